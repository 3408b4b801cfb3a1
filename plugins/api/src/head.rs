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
