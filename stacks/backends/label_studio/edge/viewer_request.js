// The deployed site's CloudFront Function (cloudfront-js-2.0, viewer request): the outer, coarse filter.
//
// Who may do what is decided inside Label Studio, where the caller is known (label_studio_plugin/labeling_gate:
// the rule table applied to the route Django resolved). This function holds no credential; it refuses what no
// browser or client of ours sends, so that nothing between here and Django can read a path differently from
// Django: dot segments, encoded slashes and backslashes, NUL and control characters, ';' parameters, doubled
// slashes, unknown methods and method-override headers (400). It also closes Django's admin site and the job
// queue's pages to everyone (403): nobody administers Label Studio through them.

var METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
var OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];
var CLOSED_PREFIXES = ['/admin', '/django-rq'];

function answer(status, description, reason) {
  return {
    statusCode: status,
    statusDescription: description,
    headers: {'x-labeling-gate': {value: reason}, 'cache-control': {value: 'no-store'}}
  };
}

function decodedOrNull(text) {
  try {
    return decodeURIComponent(text);
  } catch (e) {
    return null;
  }
}

// True when the path could mean different things to different readers.
function ambiguous(uri) {
  if (uri.charAt(0) !== '/') return true;
  if (/%2f|%5c|%00|%2e|%3b/i.test(uri)) return true;
  var path = decodedOrNull(uri);
  if (path === null) return true;
  if (/[\\;\u0000-\u001f\u007f]/.test(path)) return true;
  if (path.indexOf('//') >= 0) return true;
  var segments = path.split('/');
  for (var i = 0; i < segments.length; i++) {
    if (segments[i] === '.' || segments[i] === '..') return true;
  }
  return false;
}

function closed(uri) {
  var path = (decodedOrNull(uri) || uri).toLowerCase();
  for (var i = 0; i < CLOSED_PREFIXES.length; i++) {
    var prefix = CLOSED_PREFIXES[i];
    if (path === prefix || path.indexOf(prefix + '/') === 0) return true;
  }
  return false;
}

function handler(event) {
  var request = event.request;
  if (METHODS.indexOf(request.method) < 0) return answer(405, 'Method Not Allowed', 'method');
  var headers = request.headers || {};
  for (var i = 0; i < OVERRIDE_HEADERS.length; i++) {
    if (headers[OVERRIDE_HEADERS[i]]) return answer(400, 'Bad Request', 'method-override');
  }
  if (ambiguous(request.uri)) return answer(400, 'Bad Request', 'ambiguous-path');
  if (closed(request.uri)) return answer(403, 'Forbidden', 'closed');
  return request;
}
