//! Pingora's request and response heads seen through the filter interface's traits, so that
//! filters never name an engine type.

use ficus_plugin::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use ficus_plugin::{RequestHead, ResponseHead};
use pingora::http::{RequestHeader, ResponseHeader};

/// A Pingora request head as a [`RequestHead`].
pub struct Req<'a>(pub &'a mut RequestHeader);

/// Header changes with a typed name and value cannot fail in Pingora (its `Result` is about
/// converting other name types); should one fail anyway, the change is dropped and logged.
fn logged(result: pingora::Result<impl Sized>) {
    if let Err(e) = result {
        tracing::debug!("header change refused: {e}");
    }
}

impl RequestHead for Req<'_> {
    fn method(&self) -> &Method {
        &self.0.method
    }
    fn uri(&self) -> &Uri {
        &self.0.uri
    }
    fn version(&self) -> ficus_plugin::http::Version {
        self.0.version
    }
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
    fn set_uri(&mut self, uri: Uri) {
        self.0.set_uri(uri);
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        logged(self.0.insert_header(name, value));
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        logged(self.0.append_header(name, value));
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

/// A Pingora response head as a [`ResponseHead`].
pub struct Resp<'a>(pub &'a mut ResponseHeader);

impl ResponseHead for Resp<'_> {
    fn status(&self) -> StatusCode {
        self.0.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        logged(self.0.insert_header(name, value));
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        logged(self.0.append_header(name, value));
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}
