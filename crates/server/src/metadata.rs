//! Response metadata that tells a caller which version, schema and instance answered.

pub use flotilla_proto::headers::{INSTANCE_HEADER, SCHEMA_HEADER, VERSION_HEADER};

use http::{HeaderMap, HeaderValue};
use tokio::sync::watch;

/// What the server shell adds to every response: [`VERSION_HEADER`], [`SCHEMA_HEADER`] and, once
/// the instance is registered, [`INSTANCE_HEADER`] (replaced when it registers again after its
/// lease was lost). Headers the app set under these names are replaced, not duplicated.
pub(crate) fn fleet_headers(
    version: HeaderValue,
    schema: HeaderValue,
    instance: watch::Receiver<Option<HeaderValue>>,
) -> impl Fn(&mut HeaderMap) + Send + Sync + 'static {
    move |headers: &mut HeaderMap| {
        // Cloning a `HeaderValue` shares its bytes.
        headers.insert(VERSION_HEADER, version.clone());
        headers.insert(SCHEMA_HEADER, schema.clone());
        if let Some(instance) = instance.borrow().clone() {
            headers.insert(INSTANCE_HEADER, instance);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_gets_version_and_schema_and_the_instance_once_known() {
        let (instance, instance_rx) = watch::channel(None);
        let add = fleet_headers(
            HeaderValue::from_static("1.1.0"),
            HeaderValue::from_static("ab12"),
            instance_rx,
        );
        let headers = |add: &dyn Fn(&mut HeaderMap)| {
            let mut headers = HeaderMap::new();
            add(&mut headers);
            headers
        };
        let before = headers(&add);
        assert_eq!(before[VERSION_HEADER], "1.1.0");
        assert_eq!(before[SCHEMA_HEADER], "ab12");
        assert!(before.get(INSTANCE_HEADER).is_none());

        instance.send_replace(Some(HeaderValue::from_static("i-1")));
        assert_eq!(headers(&add)[INSTANCE_HEADER], "i-1");
        // A new registration replaces the id on later responses.
        instance.send_replace(Some(HeaderValue::from_static("i-2")));
        assert_eq!(headers(&add)[INSTANCE_HEADER], "i-2");
    }

    #[test]
    fn headers_the_app_set_are_replaced_not_duplicated() {
        let (_instance, instance_rx) = watch::channel(None);
        let add = fleet_headers(
            HeaderValue::from_static("2.0.0"),
            HeaderValue::from_static("cd34"),
            instance_rx,
        );
        let mut headers = HeaderMap::new();
        headers.insert(VERSION_HEADER, HeaderValue::from_static("spoofed"));
        add(&mut headers);
        let versions: Vec<_> = headers.get_all(VERSION_HEADER).iter().collect();
        assert_eq!(versions, ["2.0.0"]);
    }
}
