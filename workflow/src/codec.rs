//! Payload encoding: JSON by default, bincode behind the `bincode` feature.
//! The codec is recorded per execution, so a database can hold both.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;

/// How payloads (inputs, step results, errors) are encoded in the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// serde_json (with `float_roundtrip`): readable by the CLI and dashboard
    /// without the Rust types. The default.
    #[default]
    Json,
    /// bincode 2 with its standard configuration: compact, opaque to tools.
    #[cfg(feature = "bincode")]
    Bincode,
}

impl Codec {
    /// The name stored with each execution.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Json => "json",
            #[cfg(feature = "bincode")]
            Codec::Bincode => "bincode",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Codec> {
        match name {
            "json" => Some(Codec::Json),
            #[cfg(feature = "bincode")]
            "bincode" => Some(Codec::Bincode),
            _ => None,
        }
    }

    /// Encodes `value`; `what` names it in the error ("the output of step `x#0`").
    pub(crate) fn encode<T: Serialize + ?Sized>(
        self,
        value: &T,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, CodecError> {
        let result = match self {
            Codec::Json => {
                let mut out = Vec::with_capacity(64);
                let mut ser = serde_json::Serializer::new(&mut out);
                serde_path_to_error::serialize(value, &mut ser)
                    .map(|()| out)
                    .map_err(|e| describe(e.path(), e.inner()))
            }
            #[cfg(feature = "bincode")]
            Codec::Bincode => bincode::serde::encode_to_vec(value, bincode::config::standard())
                .map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError {
            operation: "encode",
            what: what(),
            type_name: std::any::type_name::<T>(),
            message,
        })
    }

    /// Decodes a `T`; on failure the error names `what`, the type and, for
    /// JSON, the path inside the value.
    pub(crate) fn decode<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<T, CodecError> {
        let result = match self {
            Codec::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                serde_path_to_error::deserialize(&mut de)
                    .map_err(|e| describe(e.path(), e.inner()))
                    .and_then(|v| de.end().map(|()| v).map_err(|e| e.to_string()))
            }
            #[cfg(feature = "bincode")]
            Codec::Bincode => bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map(|(v, _)| v)
                .map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError {
            operation: "decode",
            what: what(),
            type_name: std::any::type_name::<T>(),
            message,
        })
    }
}

fn describe(path: &serde_path_to_error::Path, inner: &serde_json::Error) -> String {
    let path = path.to_string();
    if path == "." {
        inner.to_string()
    } else {
        format!("at `{path}`: {inner}")
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An encoded value from the journal, with the codec that wrote it.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    codec: Codec,
    bytes: Vec<u8>,
}

impl Payload {
    pub(crate) fn new(codec: Codec, bytes: Vec<u8>) -> Self {
        Payload { codec, bytes }
    }

    /// The codec that encoded it.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes it into a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        self.codec
            .decode(&self.bytes, || "a journaled payload".to_owned())
    }

    /// The value as JSON, when the codec is JSON.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        match self.codec {
            Codec::Json => serde_json::from_slice(&self.bytes).ok(),
            #[cfg(feature = "bincode")]
            Codec::Bincode => None,
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.codec {
            Codec::Json => write!(f, "{}", String::from_utf8_lossy(&self.bytes)),
            #[cfg(feature = "bincode")]
            Codec::Bincode => write!(f, "<{} bytes of bincode>", self.bytes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Order {
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        qty: u32,
    }

    #[test]
    fn decode_error_names_the_path_and_type() {
        let err = Codec::Json
            .decode::<Order>(br#"{"items":[{"qty":1},{"qty":"two"}]}"#, || {
                "the input".into()
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("items[1].qty"), "{text}");
        assert!(text.contains("Order"), "{text}");
    }

    #[test]
    fn encode_error_names_the_type() {
        let mut map = BTreeMap::new();
        map.insert((1, 2), "x");
        let err = Codec::Json.encode(&map, || "a value".into()).unwrap_err();
        assert!(err.to_string().contains("BTreeMap"), "{err}");
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_round_trips_and_names_the_type_on_failure() {
        let bytes = Codec::Bincode
            .encode(&(7u32, "x".to_owned()), String::new)
            .unwrap();
        let back: (u32, String) = Codec::Bincode.decode(&bytes, String::new).unwrap();
        assert_eq!(back, (7, "x".to_owned()));
        let err = Codec::Bincode
            .decode::<Vec<String>>(&[0xff], || "a value".into())
            .unwrap_err();
        assert!(
            err.to_string().contains("Vec<alloc::string::String>"),
            "{err}"
        );
        assert_eq!(Payload::new(Codec::Bincode, bytes).to_json(), None);
    }

    #[test]
    fn floats_round_trip_exactly() {
        let x = 0.1f64 + 0.2;
        let bytes = Codec::Json.encode(&x, String::new).unwrap();
        let back: f64 = Codec::Json.decode(&bytes, String::new).unwrap();
        assert_eq!(back.to_bits(), x.to_bits());
    }
}
