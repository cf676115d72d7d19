// Parley's GraphiQL page script. It is served from the binary with the
// vendored React and GraphiQL bundles and reads its settings from data-*
// attributes of #graphiql, so the page needs no inline script.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var endpoint = root.getAttribute('data-endpoint') || '/graphql';
  var defaultHeaders = root.getAttribute('data-default-headers') || '';

  // The HTTP endpoint, and the same URL on ws:// or wss:// for subscriptions
  // (graphql-transport-ws, bundled in graphiql.min.js).
  var url = new URL(endpoint, window.location.href);
  var wsURL = new URL(url.href);
  wsURL.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

  var base = GraphiQL.createFetcher({
    url: url.href,
    subscriptionUrl: wsURL.href,
  });

  // A header still holding its placeholder value from defaultHeaders is not
  // sent: the server rejects a malformed token, and without it the schema
  // still loads anonymously until a real token is pasted.
  var placeholders = {};
  try {
    placeholders = JSON.parse(defaultHeaders) || {};
  } catch (e) {
    placeholders = {};
  }
  function withoutPlaceholders(headers) {
    if (!headers || typeof headers !== 'object') {
      return headers;
    }
    var out = {};
    Object.keys(headers).forEach(function (name) {
      if (!Object.prototype.hasOwnProperty.call(placeholders, name) ||
          headers[name] !== placeholders[name]) {
        out[name] = headers[name];
      }
    });
    return out;
  }
  function fetcher(params, opts) {
    var o = Object.assign({}, opts);
    o.headers = withoutPlaceholders(o.headers);
    return base(params, o);
  }

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: defaultHeaders,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers',
    }),
  );
})();
