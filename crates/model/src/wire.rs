//! Just enough of the protobuf wire format to split a FileDescriptorSet into its files without
//! decoding them, so that nothing in them (custom options, unknown fields) is lost.

/// A top-level field of an encoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub number: u64,
    pub wire_type: u8,
    /// The whole field, tag included.
    pub raw: &'a [u8],
    /// For length-delimited fields, the payload; empty otherwise.
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {offset}: {problem}")]
pub(crate) struct WireError {
    pub offset: usize,
    pub problem: &'static str,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// The top-level fields of `message`, in order.
pub(crate) fn fields(message: &[u8]) -> Result<Vec<Field<'_>>, WireError> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let start = pos;
        let tag = read_varint(message, &mut pos)?;
        let (number, wire_type) = (tag >> 3, (tag & 7) as u8);
        if number == 0 {
            return Err(WireError {
                offset: start,
                problem: "field number 0",
            });
        }
        let payload = match wire_type {
            VARINT => {
                read_varint(message, &mut pos)?;
                &message[pos..pos]
            }
            FIXED64 => skip(message, &mut pos, 8)?,
            FIXED32 => skip(message, &mut pos, 4)?,
            LEN => {
                let len = read_varint(message, &mut pos)?;
                let len = usize::try_from(len).map_err(|_| WireError {
                    offset: pos,
                    problem: "length does not fit in memory",
                })?;
                skip(message, &mut pos, len)?
            }
            _ => {
                return Err(WireError {
                    offset: start,
                    problem: "unsupported wire type",
                });
            }
        };
        fields.push(Field {
            number,
            wire_type,
            raw: &message[start..pos],
            payload,
        });
    }
    Ok(fields)
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let start = *pos;
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = bytes.get(*pos) else {
            return Err(WireError {
                offset: start,
                problem: "truncated varint",
            });
        };
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError {
        offset: start,
        problem: "varint longer than 10 bytes",
    })
}

fn skip<'a>(bytes: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], WireError> {
    let end = pos
        .checked_add(len)
        .filter(|end| *end <= bytes.len())
        .ok_or(WireError {
            offset: *pos,
            problem: "field runs past the end",
        })?;
    let payload = &bytes[*pos..end];
    *pos = end;
    Ok(payload)
}

/// Appends a length-delimited field.
pub(crate) fn write_len_field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    write_varint(out, number << 3 | u64::from(LEN));
    write_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut message = Vec::new();
        write_len_field(&mut message, 1, b"greeter.proto");
        message.extend_from_slice(&[0x18, 0x96, 0x01]); // field 3, varint 150
        write_len_field(&mut message, 300, &[7; 200]);
        let parsed = fields(&message).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            (parsed[0].number, parsed[0].payload),
            (1, &b"greeter.proto"[..])
        );
        assert_eq!((parsed[1].number, parsed[1].wire_type), (3, VARINT));
        assert_eq!((parsed[2].number, parsed[2].payload.len()), (300, 200));
        let rebuilt: Vec<u8> = parsed.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(rebuilt, message);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(fields(&[0x0a, 0x05, b'a']).is_err(), "truncated payload");
        assert!(fields(&[0x0a]).is_err(), "missing length");
        assert!(fields(&[0x0b]).is_err(), "group wire type");
        assert!(fields(&[0x00]).is_err(), "field 0");
        assert!(
            fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ])
            .is_err()
        );
    }
}
