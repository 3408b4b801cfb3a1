//! The request and response heads as a filter sees them, whatever engine carries them.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

/// A request head a filter may read and change.
pub trait RequestHead: Send {
    fn method(&self) -> &Method;
    fn uri(&self) -> &Uri;
    /// The HTTP version the client spoke.
    fn version(&self) -> Version;
    fn headers(&self) -> &HeaderMap;
    /// Replaces the request target (path and query).
    fn set_uri(&mut self, uri: Uri);
    /// Sets a header, replacing every earlier value.
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Adds a value after the header's earlier ones.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    fn remove_header(&mut self, name: &HeaderName);
}

/// A response head a filter may read and change.
pub trait ResponseHead: Send {
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &HeaderMap;
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    fn remove_header(&mut self, name: &HeaderName);
}

/// Plain `http` types are heads too: tests and engines built on `http` use them directly.
impl RequestHead for http::request::Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
    fn version(&self) -> Version {
        self.version
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}

impl ResponseHead for http::response::Parts {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}

/// The hop-by-hop headers of a request (RFC 9110 section 7.6.1, and HTTP/2's upgrade settings),
/// which ficus removes on every hop.
pub const HOP_BY_HOP_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// The headers ficus manages itself, which no plugin may set: the hop-by-hop ones
/// ([`HOP_BY_HOP_HEADERS`]), the framing ones (a changed length, or a `transfer-encoding` beside
/// ficus's `content-length`, would desynchronise the connection) and `host` (`rewrite`'s to set).
pub const MANAGED_HEADERS: [&str; 12] = {
    let h = HOP_BY_HOP_HEADERS;
    [
        h[0],
        h[1],
        h[2],
        h[3],
        h[4],
        h[5],
        h[6],
        h[7],
        h[8],
        h[9],
        "content-length",
        "host",
    ]
};

/// Whether `name` is one of [`MANAGED_HEADERS`] or in ficus's own `x-ficus-*` namespace (ficus
/// drops a client's and sets its own): a header a plugin's configuration may not name.
pub fn is_managed(name: &HeaderName) -> bool {
    MANAGED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("x-ficus-")
}
