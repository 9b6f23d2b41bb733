//! Versioned value encoding: one version byte, then JSON. Decoding walks a migration chain from
//! the stored version to the current one, so an older data dir opens after an upgrade.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version every value is written with.
pub const CURRENT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("unknown value version {0} (this build reads up to {CURRENT_VERSION}); was the data dir written by a newer release?")]
    UnknownVersion(u8),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![CURRENT_VERSION];
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    let current = migrate(version, body)?;
    Ok(serde_json::from_value(current)?)
}

/// Bring a stored JSON body of `version` to the current shape. Add a step here for each new
/// version: `1 => upgrade_v1_to_v2(value)`, then fall through to the next.
fn migrate(version: u8, body: &[u8]) -> Result<serde_json::Value, CodecError> {
    match version {
        1 => Ok(serde_json::from_slice(body)?),
        v => Err(CodecError::UnknownVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_checks() {
        let bytes = encode(&vec![1u32, 2, 3]).expect("encode");
        assert_eq!(bytes[0], CURRENT_VERSION);
        assert_eq!(decode::<Vec<u32>>(&bytes).expect("decode"), vec![1, 2, 3]);
        assert!(matches!(decode::<Vec<u32>>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<Vec<u32>>(&[9, b'[', b']']),
            Err(CodecError::UnknownVersion(9))
        ));
        assert!(matches!(decode::<Vec<u32>>(&[1, b'{']), Err(CodecError::Json(_))));
    }
}
