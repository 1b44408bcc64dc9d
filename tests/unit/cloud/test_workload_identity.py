"""One cloud identity per namespace (issue 13 §1), as pure decisions: the workload principal template, the
rendered names, and what each namespace's grants reach. Fast tier, no cloud.

The grants are checked with IAM's own matching rules (`_iam_like`: `*` and `?` wildcards, as S3 and ECR
resource ARNs and `s3:prefix` conditions use them), so "team's grant does not reach team-a's objects" is a
statement about the rendered policy, not about its text.
"""

from __future__ import annotations

from typing import Any

import pytest

from substratus_controller.cloud.aws import AWSDriver, _iam_like, with_trusted_subjects, without_trusted_subjects
from substratus_controller.cloud.base import BucketURL, CloudConfigError, IdentityError, check_workload_template
from substratus_controller.cloud.gcp import GCPDriver, _remove_members
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import WORKLOAD_SERVICE_ACCOUNTS, Kind

ACCOUNT = "123456789012"
CONTROLLER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/substratus"
CONTROLLER_GSA = "substratus@test-project.iam.gserviceaccount.com"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
NAMESPACES = ["a", "team", "team-a", "team-a-b", "research", "x" * 19]


def aws(template: str = "", bucket: str = "s3://artifacts/base") -> AWSDriver:
    return AWSDriver(
        cluster_name="c",
        artifact_bucket=BucketURL.parse(bucket),
        registry_url=f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/substratus",
        principal=CONTROLLER_ROLE,
        region="us-west-2",
        oidc_provider=ISSUER,
        workload_principal=template,
    )


def gcp(template: str = "", registry: str = "us-central1-docker.pkg.dev/test-project/substratus") -> GCPDriver:
    return GCPDriver(
        cluster_name="c",
        artifact_bucket=BucketURL.parse("gs://artifacts"),
        registry_url=registry,
        principal=CONTROLLER_GSA,
        project_id="test-project",
        cluster_location="us-central1",
        workload_principal=template,
    )


# ------------------------------------------------------------------------------------------- template
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("arn:aws:iam::1:role/shared", "must contain {namespace}"),
        ("", "must contain {namespace}"),
        (CONTROLLER_ROLE, "must contain {namespace}"),
        ("arn:aws:iam::123456789012:role/substratus{namespace}", "must not name the controller's own principal"),
    ],
)
def test_a_template_without_a_namespace_or_naming_the_controller_is_a_config_error(template: str, message: str) -> None:
    with pytest.raises(CloudConfigError, match=f"--workload-principal/WORKLOAD_PRINCIPAL {message}|{message}"):
        check_workload_template(template, controller=CONTROLLER_ROLE)


def test_a_template_with_the_namespace_is_accepted() -> None:
    check_workload_template("arn:aws:iam::1:role/ml-{namespace}", controller=CONTROLLER_ROLE)


def test_the_drivers_check_the_template_at_construction() -> None:
    with pytest.raises(CloudConfigError, match="must contain"):
        aws("arn:aws:iam::123456789012:role/everyone")
    with pytest.raises(CloudConfigError, match="must contain"):
        gcp("everyone@test-project.iam.gserviceaccount.com")


# ------------------------------------------------------------------------------------------- principals
@pytest.mark.parametrize("make", [aws, gcp], ids=["aws", "gcp"])
def test_every_namespace_has_its_own_principal_and_none_is_the_controllers(make: Any) -> None:
    driver = make()
    principals = [driver.workload_principal(ns) for ns in NAMESPACES]
    assert len(set(principals)) == len(NAMESPACES)
    assert driver.principal not in principals
    for ns, principal in zip(NAMESPACES, principals, strict=True):
        assert driver.service_account_annotations(ns) == {driver.principal_annotation: principal}


@pytest.mark.parametrize(
    ("make", "template", "namespace", "message"),
    [
        (gcp, "", "x" * 20, "account id 'substratus-xxxxxxxxxxxxxxxxxxxx': it must be 6-30 characters"),
        (gcp, "{namespace}@test-project.iam.gserviceaccount.com", "ab", "it must be 6-30 characters"),
        (gcp, "{namespace}@test-project.iam.gserviceaccount.com", "substratus", "is the controller's own principal"),
        (aws, "", "n" * 54, "is not an IAM role ARN"),
        (aws, f"arn:aws:iam::{ACCOUNT}:role/{{namespace}}", "substratus", "is the controller's own principal"),
    ],
)
def test_a_namespace_without_a_usable_principal_is_an_identity_error(
    make: Any, template: str, namespace: str, message: str
) -> None:
    driver = make(template)
    with pytest.raises(IdentityError, match=f"namespace {namespace} has no usable cloud identity") as err:
        driver.workload_principal(namespace)
    assert message in str(err.value)
    with pytest.raises(IdentityError):
        driver.service_account_annotations(namespace)


def test_the_longest_namespaces_the_default_templates_allow() -> None:
    assert gcp().workload_principal("x" * 19).startswith("substratus-" + "x" * 19 + "@")
    assert aws().workload_principal("n" * 53).endswith(":role/substratus-" + "n" * 53)


def test_a_cloud_without_identities_annotates_nothing() -> None:
    local = LocalDriver(cluster_name="c", artifact_bucket=BucketURL.parse("file:///var/lib/a"))
    assert local.workload_principal("team-a") == ""
    assert local.service_account_annotations("team-a") == {}


# ------------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://artifacts/base/clusters/c/namespaces/team-a/abc", ("team-a", "abc")),
        ("s3://artifacts/base/clusters/c/namespaces/team-a/abc/uploads/x.tar.gz", ("team-a", "abc/uploads/x.tar.gz")),
        ("s3://artifacts/base/clusters/c/namespaces/team-a", ("team-a", "")),
        ("s3://artifacts/base/clusters/c/namespaces/", None),
        ("s3://artifacts/base/clusters/other/namespaces/team-a/abc", None),
        ("s3://artifacts/base/abc", None),
        ("s3://artifacts/base2/clusters/c/namespaces/team-a/abc", None),
        ("s3://elsewhere/base/clusters/c/namespaces/team-a/abc", None),
        ("gs://artifacts/base/clusters/c/namespaces/team-a/abc", None),
    ],
)
def test_split_namespace(url: str, expected: tuple[str, str] | None) -> None:
    assert aws().split_namespace(BucketURL.parse(url)) == expected


@pytest.mark.parametrize("kind", list(Kind))
def test_artifacts_and_uploads_live_under_their_namespace_prefix(kind: Kind) -> None:
    d = aws()
    artifact = d.artifact_url(kind, "team-a", "llama")
    upload = d.upload_url(kind, "team-a", "llama", "0" * 32)
    for url in (artifact, upload):
        assert d.split_namespace(url) is not None
        assert d.split_namespace(url)[0] == "team-a"  # type: ignore[index]
    assert upload.path.endswith(f"/uploads/{'0' * 32}.tar.gz")


@pytest.mark.parametrize("md5", ["", "latest", "0" * 31, "0" * 33, "A" * 32, "../" + "0" * 29])
def test_an_upload_is_addressed_only_by_a_well_formed_md5(md5: str) -> None:
    with pytest.raises(ValueError, match="32 lower-case hex digits"):
        aws().upload_url(Kind.MODEL, "ns", "m", md5)


# ------------------------------------------------------------------------------------------- aws grants
def _allows(policy: dict[str, Any], action: str, resource: str, prefix: str | None = None) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if action not in actions or not any(_iam_like(r, resource) for r in resources):
            continue
        condition = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if condition is None or (prefix is not None and any(_iam_like(c, prefix) for c in condition)):
            return True
    return False


@pytest.mark.parametrize("bucket", ["s3://artifacts/base", "s3://artifacts"])
@pytest.mark.parametrize(("owner", "other"), [("team", "team-a"), ("team-a", "team"), ("a", "team-a"), ("team-a", "a")])
def test_a_namespace_role_reaches_its_own_objects_and_images_only(bucket: str, owner: str, other: str) -> None:
    d = aws(bucket=bucket)
    policy = d.namespace_permissions(owner)
    mine = d.artifact_url(Kind.MODEL, owner, "llama")
    theirs = d.artifact_url(Kind.MODEL, other, "llama")
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert _allows(policy, action, f"arn:aws:s3:::artifacts/{mine.path}/artifacts/model.bin")
        assert not _allows(policy, action, f"arn:aws:s3:::artifacts/{theirs.path}/artifacts/model.bin")
    assert _allows(policy, "s3:ListBucket", "arn:aws:s3:::artifacts", prefix=f"{mine.path}/")
    assert not _allows(policy, "s3:ListBucket", "arn:aws:s3:::artifacts", prefix=f"{theirs.path}/")
    assert not _allows(policy, "s3:ListBucket", "arn:aws:s3:::artifacts", prefix="")  # the bucket's listing

    def repository(namespace: str) -> str:
        image = d.image_url(Kind.MODEL, namespace, "llama", "v1").rsplit(":", 1)[0]
        return f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/{image.partition('/')[2]}"

    assert _allows(policy, "ecr:PutImage", repository(owner))
    assert not _allows(policy, "ecr:PutImage", repository(other))


def test_image_names_of_look_alike_objects_differ_and_only_their_namespace_may_push() -> None:
    d = aws()
    a = d.image_url(Kind.MODEL, "team-a", "llama", "v1")
    b = d.image_url(Kind.MODEL, "team", "a-llama", "v1")
    assert a != b
    repo_b = f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/{b.partition('/')[2].rsplit(':', 1)[0]}"
    assert not _allows(d.namespace_permissions("team-a"), "ecr:PutImage", repo_b)
    assert _allows(d.namespace_permissions("team"), "ecr:PutImage", repo_b)


def test_no_workload_role_gets_any_iam_action() -> None:
    policy = aws().namespace_permissions("team-a")
    actions = [
        a for s in policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert actions
    assert not [a for a in actions if a.startswith(("iam:", "sts:")) or "*" in a]


def test_the_trust_policy_namespace_iam_prints_trusts_only_the_namespaces_own_accounts() -> None:
    out = aws().namespace_iam("team-a")
    assert out["principal"] == f"arn:aws:iam::{ACCOUNT}:role/substratus-team-a"
    (statement,) = out["trustPolicy"]["Statement"]
    subjects = statement["Condition"]["StringEquals"][f"{ISSUER}:sub"]
    assert subjects == sorted(f"system:serviceaccount:team-a:{sa}" for sa in WORKLOAD_SERVICE_ACCOUNTS)
    assert out["permissionPolicy"] == aws().namespace_permissions("team-a")


SUB = f"{ISSUER}:sub"


def _trust(*subjects: str, extra: bool = False) -> dict[str, Any]:
    doc = with_trusted_subjects({}, provider_arn=PROVIDER, issuer=ISSUER, subjects=list(subjects))
    if extra:
        doc["Statement"].insert(0, {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "x"}, "Action": "a"})
    return doc


@pytest.mark.parametrize(
    ("before", "remove", "left"),
    [
        (["s:a", "s:b"], {"s:a"}, ["s:b"]),
        (["s:a", "s:b"], {"s:a", "s:b"}, None),  # the own statement goes once it trusts nobody
        (["s:a"], {"s:other"}, ["s:a"]),
        (["s:a"], set(), ["s:a"]),
    ],
)
def test_without_trusted_subjects(before: list[str], remove: set[str], left: list[str] | None) -> None:
    doc = _trust(*before, extra=True)
    out = without_trusted_subjects(doc, provider_arn=PROVIDER, issuer=ISSUER, subjects=remove)
    assert out["Statement"][0]["Sid"] == "Admin"  # someone else's statement is kept as it is
    own = out["Statement"][1:]
    if left is None:
        assert own == []
    else:
        assert own[0]["Condition"]["StringEquals"][SUB] == left
    assert doc == _trust(*before, extra=True)  # the input is not modified


# ------------------------------------------------------------------------------------------- gcp grants
def test_gcp_bucket_binding_is_conditioned_on_the_namespace_prefix_with_its_slash() -> None:
    bindings = gcp().namespace_bindings("team")
    expression = bindings["bucket"]["binding"]["condition"]["expression"]
    assert 'startsWith("projects/_/buckets/artifacts/objects/clusters/c/namespaces/team/")' in expression
    assert bindings["bucket"]["binding"]["members"] == [f"serviceAccount:{gcp().workload_principal('team')}"]
    assert bindings["bucket"]["binding"]["role"] == "roles/storage.objectUser"
    assert "registry" not in bindings  # one shared repository: no per-namespace registry grant to render


def test_gcp_registry_binding_only_with_a_repository_per_namespace() -> None:
    d = gcp(registry="us-central1-docker.pkg.dev/test-project/ml-{namespace}")
    registry = d.namespace_bindings("team-a")["registry"]
    assert registry["repository"] == "us-central1-docker.pkg.dev/test-project/ml-team-a"
    assert d.image_url(Kind.MODEL, "team-a", "llama", "v1").startswith(registry["repository"] + "/")


def test_gcp_workload_identity_members_are_the_namespaces_accounts() -> None:
    members = gcp().namespace_bindings("team-a")["workloadIdentityUser"]
    assert members == sorted(
        f"serviceAccount:test-project.svc.id.goog[team-a/{sa}]" for sa in WORKLOAD_SERVICE_ACCOUNTS
    )


ROLE = "roles/iam.workloadIdentityUser"


@pytest.mark.parametrize(
    ("bindings", "remove", "expected", "removed"),
    [
        ([{"role": ROLE, "members": ["a", "b"]}], {"a"}, [{"role": ROLE, "members": ["b"]}], True),
        ([{"role": ROLE, "members": ["a"]}], {"a"}, [], True),
        ([{"role": ROLE, "members": ["b"]}], {"a"}, [{"role": ROLE, "members": ["b"]}], False),
        # another role, and a conditional binding of the same role: never ours, kept
        ([{"role": "roles/x", "members": ["a"]}], {"a"}, [{"role": "roles/x", "members": ["a"]}], False),
        (
            [{"role": ROLE, "members": ["a"], "condition": {"expression": "true"}}],
            {"a"},
            [{"role": ROLE, "members": ["a"], "condition": {"expression": "true"}}],
            False,
        ),
        ([], {"a"}, [], False),
    ],
)
def test_remove_members(
    bindings: list[dict[str, Any]], remove: set[str], expected: list[dict[str, Any]], removed: bool
) -> None:
    policy: dict[str, Any] = {"bindings": bindings, "etag": "e"}
    assert _remove_members(policy, ROLE, remove) is removed
    assert policy["bindings"] == expected
    assert policy["etag"] == "e"
