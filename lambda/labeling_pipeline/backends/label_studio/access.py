"""Who may do what in the deployed Label Studio: workers label, only the pipeline administers.

Label Studio Community has no roles: any signed-in user can export, rename or delete a project, read the
webhook (and its secret header), turn the invite token over or remove members. So the site refuses, in front of
Label Studio, every request below that does not carry the pipeline's credential, its API token
(``Authorization: Token <token>``, the header the pipeline, the deployment's setup and the CLI send anyway):

- ADMIN_ONLY: these paths, whatever the method (reads too: an export, a webhook's secret header, the invite
  token and the member list are what must not leak);
- any other request that changes something (not GET, HEAD or OPTIONS), unless WORKER_WRITES lists it: the
  writes a worker's labeling session makes (tests/label_studio/fixtures/worker_session_requests.json is a real
  session, recorded through the browser), and the worker's own account.

One table, three users: `cloudfront_function_code` turns it into the CloudFront Function (JavaScript runtime 2.0)
on the deployed site's viewer requests; the sandbox's gate (sandbox/label_studio_gate.py) runs the same code
through Node in front of the local Label Studio; the tests run the code read from the synthesized template.

The function knows the credential only as a SHA-256 digest (`credential_digest`), which the deployment computes
from the token secret at deploy time (the setup function, resource type ADMIN_DIGEST_RESOURCE_TYPE): the token
itself is never in the template, nor in the function. Paths are compared percent-decoded, with repeated slashes
folded and in lower case, as Django routes them (it decodes before routing) or stricter.

Dependency-free: the Lambda asset (the setup function computes the digest), the stacks and the sandbox import it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

ADMIN_DIGEST_RESOURCE_TYPE = "Custom::LabelStudioAdminDigest"
# What the function's code holds in place of the digest until the deployment fills it in.
DIGEST_PLACEHOLDER = "@ADMIN_CREDENTIAL_SHA256@"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ANY = ("*",)
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Rule:
    methods: tuple[str, ...]
    # A regular expression, the same in Python and JavaScript, searched in the decoded, lower-case path.
    path: str
    why: str
    # For Label Studio's data manager actions (POST /api/dm/actions?id=<action>): the actions allowed.
    action_ids: tuple[str, ...] = ()


ADMIN_ONLY: tuple[Rule, ...] = (
    Rule(ANY, r"^/api/projects/[^/]+/export", "exports of a project, their formats, files and conversions"),
    Rule(ANY, r"^/api/auth/export", "the export files' access check"),
    Rule(ANY, r"^/api/storages(/|$)", "cloud storages: their settings, syncs, and export storages"),
    Rule(ANY, r"^/api/webhooks(/|$)", "webhooks: reading one shows its secret header"),
    Rule(ANY, r"^/api/invite", "the invite link and turning its token over"),
    Rule(ANY, r"^/api/organizations/[^/]+/memberships", "the members of the organization, and removing one"),
    Rule(ANY, r"^/admin(/|$)", "Django's admin site"),
    Rule(ANY, r"^/django-rq(/|$)", "the job queue's admin pages"),
)

WORKER_WRITES: tuple[Rule, ...] = (
    Rule(("POST",), r"^/user/login/?$", "signing in"),
    Rule(("POST",), r"^/user/signup/?$", "signing up: it takes the invite token, which only the pipeline reads"),
    Rule(("POST",), r"^/user/account(/|$)", "the signed-in user's own profile form"),
    Rule(WRITES, r"^/logout/?$", "signing out"),
    Rule(WRITES, r"^/api/current-user/", "the signed-in user's own token, product tours and hotkeys"),
    Rule(("POST",), r"^/api/tasks/[0-9]+/annotations/?$", "submitting or skipping a task"),
    Rule(("PATCH", "PUT", "DELETE"), r"^/api/annotations/[0-9]+/?$", "updating or deleting an annotation"),
    Rule(("POST",), r"^/api/annotations/[0-9]+/(drafts|convert-to-draft)/?$", "a draft of an annotation"),
    Rule(("POST",), r"^/api/tasks/[0-9]+/drafts/?$", "saving a draft"),
    Rule(("PATCH", "PUT", "DELETE"), r"^/api/drafts/[0-9]+/?$", "updating or deleting a draft"),
    Rule(WRITES, r"^/api/dm/views(/[0-9]+)?/?$", "the data manager's tabs (one is made on opening a project)"),
    Rule(("POST",), r"^/api/dm/actions/?$", "the labeling stream's next task", action_ids=("next_task",)),
)


def credential_digest(api_token: str) -> str:
    """The SHA-256 (hex) of the Authorization header value that carries the pipeline's token."""
    return hashlib.sha256(f"Token {api_token}".encode()).hexdigest()


def _rules_js(rules: tuple[Rule, ...]) -> str:
    rows = [
        f"  {{m: {json.dumps(list(rule.methods))}, p: new RegExp({json.dumps(rule.path)}), "
        f"ids: {json.dumps(list(rule.action_ids))}}}"
        for rule in rules
    ]
    return "[\n" + ",\n".join(rows) + "\n]"


_CODE = """// Generated from labeling_pipeline/backends/label_studio/access.py: workers label, the pipeline administers.
var crypto = require('crypto');
var ADMIN_DIGEST = '%(digest)s';
var SAFE = %(safe)s;
var ADMIN_ONLY = %(admin_only)s;
var WORKER_WRITES = %(worker_writes)s;

function methodIn(methods, method) {
  return methods.indexOf('*') >= 0 || methods.indexOf(method) >= 0;
}

function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch (e) {
    return null;
  }
}

// The values of the query parameter `name` (names and values compared percent-decoded, as Django reads them).
function queryValues(querystring, name) {
  var values = [];
  for (var key in querystring) {
    if (decoded(key) !== name) continue;
    var entry = querystring[key];
    var all = entry.multiValue ? entry.multiValue : [entry];
    for (var i = 0; i < all.length; i++) values.push(decoded(all[i].value));
  }
  return values;
}

function workerMayWrite(method, path, querystring) {
  for (var i = 0; i < WORKER_WRITES.length; i++) {
    var rule = WORKER_WRITES[i];
    if (!methodIn(rule.m, method) || !rule.p.test(path)) continue;
    if (rule.ids.length === 0) return true;
    var ids = queryValues(querystring, 'id');
    if (ids.length === 0) continue;
    var known = true;
    for (var j = 0; j < ids.length; j++) if (rule.ids.indexOf(ids[j]) < 0) known = false;
    if (known) return true;
  }
  return false;
}

function adminOnly(method, uri, querystring) {
  var path = decoded(uri);
  if (path === null) return true;
  path = path.replace(/\\/{2,}/g, '/').toLowerCase();
  for (var i = 0; i < ADMIN_ONLY.length; i++) {
    if (methodIn(ADMIN_ONLY[i].m, method) && ADMIN_ONLY[i].p.test(path)) return true;
  }
  return SAFE.indexOf(method) < 0 && !workerMayWrite(method, path, querystring);
}

function carriesCredential(headers) {
  var header = headers.authorization;
  if (!header || (header.multiValue && header.multiValue.length > 1)) return false;
  return crypto.createHash('sha256').update(header.value).digest('hex') === ADMIN_DIGEST;
}

function handler(event) {
  var request = event.request;
  if (adminOnly(request.method, request.uri, request.querystring || {}) && !carriesCredential(request.headers || {})) {
    return {statusCode: 403, statusDescription: 'Forbidden', headers: {'x-labeling-gate': {value: 'admin-only'}}};
  }
  return request;
}
"""


def cloudfront_function_code(digest: str = DIGEST_PLACEHOLDER) -> str:
    """The CloudFront Function (cloudfront-js-2.0, viewer request): 403 for an admin-only request without the
    pipeline's credential, the request unchanged otherwise."""
    return _CODE % {
        "digest": digest,
        "safe": json.dumps(list(SAFE_METHODS)),
        "admin_only": _rules_js(ADMIN_ONLY),
        "worker_writes": _rules_js(WORKER_WRITES),
    }
