"""The rule table: every route that Label Studio 1.23.2 serves (and this app's own), keyed as Django names the
route it has resolved (``ResolverMatch.route``), and per method who may call it.

- PUBLIC: anyone, signed in or not: the sign-in page, static files, the health check, the password link.
- SIGNED_IN: any signed-in user, worker or administrator; a caller who is not signed in is sent to sign in (a
  page) or answered 401 (an API). ``redact`` names what a worker's answer loses (redaction.py).
- OWNER: a signed-in user, on an object of their own (``owner``: the model and the URL argument naming it);
  administrators on any.
- ADMIN: administrators only: Label Studio's superusers, which here are the pipeline's user (its API token) and
  whoever signs in with its password. Everything a worker does not need to label is here.

A method a route does not list falls to its ``ANY`` rule, HEAD to GET; a route missing from the table, or a
method missing from both, is ADMIN. tests/label_studio/test_access_rules.py fails when the installed Label Studio
serves a route that this table does not name, or the table names one it no longer serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Access(Enum):
    PUBLIC = "public"
    SIGNED_IN = "signed-in"
    OWNER = "owner"
    ADMIN = "admin"


@dataclass(frozen=True)
class Rule:
    access: Access
    why: str
    # redaction.py: what a worker's JSON answer loses (a key of redaction.REDACTIONS).
    redact: str | None = None
    # For OWNER: "<model>:<URL argument>", model one of annotation, draft, view.
    owner: str | None = None
    # For the data manager's actions (POST /api/dm/actions?id=...): the action ids a worker may run.
    action_ids: tuple[str, ...] = ()
    # The body may not name another author or another user's annotation (annotations and drafts).
    authorship: bool = False
    # The answer is the caller's own credential (their own API token): the credential filter leaves it.
    own_credentials: bool = False


ANY = "*"
MethodRules = dict[str, Rule]


def public(why: str) -> MethodRules:
    return {"GET": Rule(Access.PUBLIC, why)}


def public_form(why: str) -> MethodRules:
    return {"GET": Rule(Access.PUBLIC, why), "POST": Rule(Access.PUBLIC, why)}


def signed_in(why: str, *methods: str, redact: str | None = None, own_credentials: bool = False) -> MethodRules:
    return {
        method: Rule(Access.SIGNED_IN, why, redact=redact, own_credentials=own_credentials)
        for method in (methods or ("GET",))
    }


def owner(why: str, owner: str, *methods: str, authorship: bool = False) -> MethodRules:
    return {method: Rule(Access.OWNER, why, owner=owner, authorship=authorship) for method in methods}


def admin(why: str) -> MethodRules:
    return {ANY: Rule(Access.ADMIN, why)}


def merged(*parts: MethodRules) -> MethodRules:
    rules: MethodRules = {}
    for part in parts:
        rules.update(part)
    return rules


FORMAT_SUFFIX = r"\.(?P<format>[a-z0-9]+)/?$"


def with_format_suffix(routes: dict[str, MethodRules]) -> dict[str, MethodRules]:
    """DRF routers serve every route again with a format suffix (``.json``): the same rules for both."""
    expanded: dict[str, MethodRules] = {}
    for route, rules in routes.items():
        expanded[route] = rules
        if route.endswith("/$"):
            expanded[route[: -len("/$")] + FORMAT_SUFFIX] = rules
    return expanded


STATIC = "static files of the pages and the labeling editor"
TASKS = "tasks, each with only the caller's own annotations and drafts"

ROUTES: dict[str, MethodRules] = {
    # --- this app ---------------------------------------------------------------------------------------
    "labeling/api/workers/": admin("worker accounts: list and add (the CLI's `workers add`)"),
    "labeling/api/workers/password-link/": admin("a new password link for a worker (`workers reset`)"),
    "labeling/api/workers/remove/": admin("removing a worker (`workers remove`)"),
    "labeling/password/<uidb64>/<token>/": public_form("a worker chooses a password with a one-time link"),
    "labeling/password/done/": public("the page after a password is chosen"),
    # --- pages --------------------------------------------------------------------------------------------
    "^$": signed_in("the home page: the list of projects"),
    "^projects/": signed_in("the projects page"),
    "^projects/<int:pk>/": signed_in("a project's page"),
    "^projects/<int:pk>/data/": signed_in("a project's tasks and the labeling stream"),
    "^projects/<int:pk>/data/import": admin("the import page"),
    "^projects/<int:pk>/data/export": admin("the export page"),
    "^projects/<int:pk>/settings/": admin("project settings"),
    "^projects/<int:pk>/settings/<sub_path>": admin("project settings"),
    "^organization/": admin("the organization page"),
    "^organization/webhooks": admin("the webhooks page"),
    "^people/": admin("the member list"),
    "^models/": admin("the models page"),
    "^user/login/": public_form("signing in"),
    "^user/signup/": admin("sign-up is closed: workers are added by the operator (`workers add`)"),
    "^user/account/": signed_in("the caller's own account page", "GET", "POST", own_credentials=True),
    "^user/account/<sub_path>": signed_in("the caller's own account page", "GET", "POST", own_credentials=True),
    "^logout/?$": signed_in("signing out", "GET", "POST"),
    # --- static files and service ----------------------------------------------------------------------
    r"^sw\.js$": public(STATIC),
    r"^sw-fallback\.js$": public(STATIC),
    r"^favicon\.ico$": public(STATIC),
    "^label-studio-frontend/(?P<path>.*)$": public(STATIC),
    "^dm/(?P<path>.*)$": public(STATIC),
    "^react-app/(?P<path>.*)$": public(STATIC),
    "^static/fonts/roboto/roboto.css$": public(STATIC),
    "^static/(?P<path>.*)$": public(STATIC),
    "heidi-tips/": public("the sign-in page's tips"),
    "health/": public("the load balancer's health check"),
    "version/": signed_in("Label Studio's version (the pages ask for it)"),
    "api/version/": signed_in("Label Studio's version (shadowed by version/, which Django matches first)"),
    "metrics/": admin("server metrics"),
    "trigger500/": admin("a test error"),
    "samples/time-series.csv": admin("template samples"),
    "samples/paragraphs.json": admin("template samples"),
    r"^swagger\.json$": admin("the API schema"),
    r"^swagger\.yaml$": admin("the API schema"),
    "^swagger/$": admin("the API schema"),
    "docs/api/": admin("the API schema"),
    "docs/": admin("the bundled documentation"),
    "docs/api/schema/": admin("the API schema"),
    "docs/api/schema/swagger-ui/": admin("the API schema"),
    "docs/api/schema/redoc/": admin("the API schema"),
    "docs/api/schema/json/": admin("the API schema"),
    "docs/api/schema/yaml/": admin("the API schema"),
    "feature-flags/": admin("feature flags"),
    "__lsa/": admin("usage analytics (off here)"),
    "^api-auth/login/": admin("DRF's browsable-API sign-in: /user/login/ is the way in"),
    "^api-auth/logout/": admin("DRF's browsable-API sign-out"),
    "^data/avatars/(?P<path>.*)$": signed_in("users' avatars"),
    "^data/upload/<path:filename>": admin("uploaded files: the pipeline's images come from S3"),
    "^storage-data/uploaded/": admin("storage downloads"),
    "^data/local-files/": admin("local files serving (off here)"),
    # --- organization and users --------------------------------------------------------------------------
    "^api/organizations/": admin("organizations"),
    "^api/organizations/<int:pk>": admin("the organization, whose answer holds the invite token"),
    "^api/organizations/<int:pk>/memberships": admin("the member list"),
    "^api/organizations/<int:pk>/memberships/<int:user_pk>/": admin("a membership, and removing a member"),
    "^api/invite": admin("the invite link"),
    "^api/invite/reset-token": admin("turning the invite token over"),
    "^api/current-user/reset-token/": signed_in("the caller's own API token", "POST", own_credentials=True),
    "^api/current-user/token": signed_in("the caller's own API token", own_credentials=True),
    "^api/current-user/whoami": signed_in("the caller's own profile"),
    "^api/current-user/product-tour": signed_in("the caller's product tours", "GET", "PUT", "PATCH"),
    "^api/current-user/hotkeys/": signed_in("the caller's hotkeys", "GET", "PATCH"),
    "^api/jwt/settings": admin("the organization's token settings"),
    "^api/token/": signed_in("the caller's own personal access tokens", "GET", "POST", own_credentials=True),
    "^api/token/refresh/": {
        "POST": Rule(Access.PUBLIC, "a refresh token buys an access token of its own user", own_credentials=True)
    },
    "^api/token/blacklist/": signed_in("revoking one's own refresh token", "POST"),
    "^api/token/rotate/": signed_in("rotating one's own personal access token", "POST", own_credentials=True),
    "^api/session-policy/": admin("the organization's session policy"),
    # --- projects ------------------------------------------------------------------------------------------
    "^api/projects/": signed_in("the projects a worker is shown", redact="projects"),
    "^api/projects/<int:pk>/": signed_in("a project's settings, as the editor reads them", redact="projects"),
    "^api/projects/counts/": admin("projects' counts"),
    "^api/projects/<int:pk>/next/": signed_in(
        "the next task of the labeling stream (views.ReviewAwareNextTaskAPI: never a reviewer's own image)",
        redact="tasks",
    ),
    "^api/projects/<int:pk>/label-stream-history/": signed_in("the caller's own labeling history"),
    "^api/projects/validate/": admin("checking a labeling configuration"),
    "^api/projects/<int:pk>/validate/": admin("checking a labeling configuration"),
    "^api/projects/<int:pk>/summary/": admin("a project's summary of every answer"),
    "^api/projects/<int:pk>/summary/reset/": admin("resetting a project's summary"),
    "^api/projects/<int:pk>/imports/<int:import_pk>/": admin("import records"),
    "^api/projects/<int:pk>/reimports/<int:reimport_pk>/": admin("import records"),
    "^api/projects/<int:pk>/tasks/": admin("every task with every answer, in bulk"),
    "^api/projects/<int:pk>/sample-task/": admin("a sample task for a configuration"),
    "^api/projects/<int:pk>/model-versions/": admin("prediction model versions"),
    "^api/projects/<int:pk>/annotators/": admin("a project's annotators"),
    "^api/templates/": admin("labeling templates"),
    "^api/import/file-upload/<int:pk>": admin("uploaded files"),
    "^api/projects/<int:pk>/tasks/bulk/": admin("importing tasks"),
    "^api/projects/<int:pk>/import": admin("importing tasks"),
    "^api/projects/<int:pk>/import/predictions": admin("importing predictions"),
    "^api/projects/<int:pk>/reimport": admin("importing tasks again"),
    "^api/projects/<int:pk>/file-uploads": admin("uploaded files"),
    # --- exports -------------------------------------------------------------------------------------------
    "^api/projects/<int:pk>/export": admin("exports of every answer"),
    "^api/projects/<int:pk>/export/formats": admin("export formats"),
    "^api/projects/<int:pk>/export/files": admin("export files"),
    "^api/projects/<int:pk>/exports/": admin("a project's exports"),
    "^api/projects/<int:pk>/exports/<int:export_pk>": admin("an export"),
    "^api/projects/<int:pk>/exports/<int:export_pk>/download": admin("an export's file"),
    "^api/projects/<int:pk>/exports/<int:export_pk>/convert": admin("converting an export"),
    "^api/auth/export/": admin("the export files' access check"),
    # --- the data manager ----------------------------------------------------------------------------------
    "^api/dm/": admin("the data manager's API root"),
    "^api/dm/<drf_format_suffix:format>": admin("the data manager's API root"),
    "^api/dm/columns/": signed_in("the task list's columns"),
    "^api/dm/project/": signed_in("the project's state in the data manager"),
    "^api/dm/actions/": merged(
        signed_in("the list of actions"),
        {"POST": Rule(Access.SIGNED_IN, "the labeling stream's next task", redact="tasks", action_ids=("next_task",))},
    ),
    "^api/dm/actions/<str:action_id>/form/": admin("actions' forms"),
    "^api/tasks/": signed_in(TASKS, redact="tasks"),
    "^api/tasks/<int:pk>/": signed_in(TASKS, redact="tasks"),
    "^api/tasks/<int:pk>/annotations/": merged(
        signed_in("a task's annotations: the caller's own", redact="annotations"),
        {"POST": Rule(Access.SIGNED_IN, "submitting or skipping a task", authorship=True)},
    ),
    "^api/tasks/<int:pk>/drafts": merged(
        signed_in("a task's drafts: the caller's own", redact="drafts"),
        {"POST": Rule(Access.SIGNED_IN, "saving a draft", authorship=True)},
    ),
    "^api/tasks/<int:pk>/annotations/<int:annotation_id>/drafts": merged(
        signed_in("an annotation's drafts: the caller's own", redact="drafts"),
        owner("a draft of one's own submitted annotation", "annotation:annotation_id", "POST", authorship=True),
    ),
    "^api/tasks/<int:pk>/agreement/": admin("agreement between annotators"),
    "^api/annotations/<int:pk>/": owner(
        "one's own annotation", "annotation:pk", "GET", "PUT", "PATCH", "DELETE", authorship=True
    ),
    "^api/annotations/<int:pk>/convert-to-draft": owner(
        "turning one's own annotation back into a draft", "annotation:pk", "GET", "POST"
    ),
    "^api/drafts/<int:pk>/": owner("one's own draft", "draft:pk", "GET", "PUT", "PATCH", "DELETE", authorship=True),
    "^tasks/<int:task_id>/resolve/": signed_in("a task's image, as a presigned link"),
    "^tasks/<int:task_id>/presign/": signed_in("a task's image, as a presigned link"),
    "^projects/<int:project_id>/resolve/": admin("project-level files"),
    "^projects/<int:project_id>/presign/": admin("project-level files"),
    # --- everything else is the pipeline's ------------------------------------------------------------------
    "^api/": admin("the API root"),
    "^api/<drf_format_suffix:format>": admin("the API root"),
    "^api/ml/": signed_in("the project's model backends, without their settings", redact="ml-backends"),
    "^api/ml/<int:pk>": admin("a model backend"),
    "^api/ml/<int:pk>/train": admin("training"),
    "^api/ml/<int:pk>/predict/test": admin("testing a model backend"),
    "^api/ml/<int:pk>/interactive-annotating": admin("interactive pre-labels (none configured)"),
    "^api/ml/<int:pk>/versions": admin("model versions"),
    "^api/webhooks/": admin("webhooks, whose answer holds the pipeline's secret header"),
    "^api/webhooks/<int:pk>/": admin("a webhook"),
    "^api/webhooks/info/": admin("webhook actions"),
    "^api/labels/bulk": admin("renaming labels in bulk"),
    "^api/fsm/entities/<str:entity_name>/<int:entity_id>/history": admin("state history"),
    "^api/fsm/entities/<str:entity_name>/<int:entity_id>/transition/": admin("state transitions"),
    **with_format_suffix(
        {
            "^api/dm/views/$": merged(
                signed_in("the caller's own data-manager tabs", redact="views"),
                signed_in("a new tab (one is made on opening a project)", "POST"),
            ),
            "^api/dm/views/reset/$": admin("deleting every tab of a project"),
            "^api/dm/views/order/$": admin("reordering tabs, other users' included"),
            "^api/dm/views/(?P<pk>[^/.]+)/$": owner(
                "one's own data-manager tab", "view:pk", "GET", "PUT", "PATCH", "DELETE"
            ),
            "^api/users/$": signed_in("the organization's people, names only", redact="users"),
            "^api/users/(?P<pk>[^/.]+)/$": admin("a user"),
            "^api/users/(?P<pk>[^/.]+)/avatar/$": admin("a user's avatar"),
            "^api/predictions/$": admin("every prediction, in bulk (the editor gets them with the task)"),
            "^api/predictions/(?P<pk>[^/.]+)/$": admin("a prediction"),
            "^api/labels/$": admin("the organization's labels"),
            "^api/labels/(?P<pk>[^/.]+)/$": admin("a label"),
            "^api/label_links/$": signed_in("labels linked to the project (the editor asks)"),
            "^api/label_links/(?P<pk>[^/.]+)/$": admin("a label link"),
        }
    ),
}

_STORAGE_KINDS = ("s3", "azure", "gcs", "redis", "localfiles")
_STORAGE_SUFFIXES = ("", "<int:pk>", "<int:pk>/sync", "validate", "form")
ROUTES.update(
    {"^api/storages/": admin("cloud storages"), "^api/storages/export": admin("cloud storages")}
    | {"^api/storages/types": admin("cloud storages"), "^api/storages/export/types": admin("cloud storages")}
    | {
        f"^api/storages/{kind}/{suffix}": admin("cloud storages: their settings and syncs")
        for kind in _STORAGE_KINDS
        for suffix in (*_STORAGE_SUFFIXES, "files")
    }
    | {
        f"^api/storages/export/{kind}" + (f"/{suffix}" if suffix else ""): admin("export storages")
        for kind in _STORAGE_KINDS
        for suffix in _STORAGE_SUFFIXES
    }
)

# Django's admin site and the job queue's pages: every route under these prefixes, whatever Label Studio adds.
ADMIN_PREFIXES: dict[str, str] = {"admin/": "Django's admin site", "django-rq/": "the job queue's pages"}


def rules_for(route: str | None) -> MethodRules | None:
    if route is None:
        return None
    if route in ROUTES:
        return ROUTES[route]
    for prefix, why in ADMIN_PREFIXES.items():
        if route.startswith(prefix):
            return admin(why)
    return None


DEFAULT = Rule(Access.ADMIN, "not in the table: only administrators")


def rule_for(route: str | None, method: str) -> Rule:
    rules = rules_for(route)
    if rules is None:
        return DEFAULT
    method = method.upper()
    if method in rules:
        return rules[method]
    if method == "HEAD" and "GET" in rules:
        return rules["GET"]
    return rules.get(ANY, DEFAULT)
