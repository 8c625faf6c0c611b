//! A minimal MQTT 3.1.1 client core for the Wi-Fi uplink: packet encoding and decoding only
//! (sans-IO; the board owns the TCP socket). Just what a node publishing signed frames needs:
//! CONNECT, CONNACK, PUBLISH at QoS 1, PUBACK, PINGREQ/PINGRESP, DISCONNECT.
//!
//! OASIS MQTT Version 3.1.1 (2014): fixed header §2.2, remaining length §2.2.3, CONNECT §3.1,
//! CONNACK §3.2, PUBLISH §3.3, PUBACK §3.4, PINGREQ §3.12, PINGRESP §3.13, DISCONNECT §3.14.

/// Why a packet could not be written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MqttError {
    /// The output buffer is too small.
    BufferTooSmall,
    /// A string or payload is longer than MQTT allows.
    TooLong,
    /// Not enough bytes yet for a whole packet.
    Incomplete,
    /// The bytes are not a packet this client understands.
    Malformed,
    /// The broker refused the connection (CONNACK return code).
    Refused(u8),
}

/// A tiny cursor that writes into a slice without panicking.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), MqttError> {
        let end = self.at + bytes.len();
        self.buf
            .get_mut(self.at..end)
            .ok_or(MqttError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
    fn u16(&mut self, v: u16) -> Result<(), MqttError> {
        self.put(&v.to_be_bytes())
    }
    fn str(&mut self, s: &[u8]) -> Result<(), MqttError> {
        self.u16(u16::try_from(s.len()).map_err(|_| MqttError::TooLong)?)?;
        self.put(s)
    }
    fn remaining_length(&mut self, mut len: usize) -> Result<(), MqttError> {
        if len > 268_435_455 {
            return Err(MqttError::TooLong);
        }
        loop {
            let mut byte = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                byte |= 0x80;
            }
            self.put(&[byte])?;
            if len == 0 {
                return Ok(());
            }
        }
    }
}

/// CONNECT options.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    /// Client identifier (e.g. `footfall-node-12`).
    pub client_id: &'a str,
    /// Keep-alive, seconds.
    pub keep_alive_s: u16,
    /// Username, if the broker wants one.
    pub username: Option<&'a str>,
    /// Password, if the broker wants one (only sent with a username).
    pub password: Option<&'a [u8]>,
}

/// Writes a CONNECT packet (clean session); returns its length.
pub fn encode_connect(c: &Connect<'_>, out: &mut [u8]) -> Result<usize, MqttError> {
    let user = c.username.map(str::as_bytes);
    let pass = user.and(c.password);
    let len = 10
        + 2
        + c.client_id.len()
        + user.map_or(0, |u| 2 + u.len())
        + pass.map_or(0, |p| 2 + p.len());
    let mut flags = 0x02; // clean session
    if user.is_some() {
        flags |= 0x80;
    }
    if pass.is_some() {
        flags |= 0x40;
    }
    let mut w = Writer { buf: out, at: 0 };
    w.put(&[0x10])?;
    w.remaining_length(len)?;
    w.str(b"MQTT")?;
    w.put(&[0x04, flags])?;
    w.u16(c.keep_alive_s)?;
    w.str(c.client_id.as_bytes())?;
    if let Some(u) = user {
        w.str(u)?;
    }
    if let Some(p) = pass {
        w.str(p)?;
    }
    Ok(w.at)
}

/// Writes a QoS 1 PUBLISH of `payload` to `topic` with `packet_id` (non-zero); returns its
/// length. `dup` marks a retransmission.
pub fn encode_publish_qos1(
    topic: &str,
    packet_id: u16,
    payload: &[u8],
    dup: bool,
    out: &mut [u8],
) -> Result<usize, MqttError> {
    if packet_id == 0 {
        return Err(MqttError::Malformed);
    }
    let len = 2 + topic.len() + 2 + payload.len();
    let mut w = Writer { buf: out, at: 0 };
    w.put(&[0x32 | if dup { 0x08 } else { 0 }])?;
    w.remaining_length(len)?;
    w.str(topic.as_bytes())?;
    w.u16(packet_id)?;
    w.put(payload)?;
    Ok(w.at)
}

/// PINGREQ.
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// DISCONNECT.
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// A packet from the broker, as far as this client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Incoming {
    /// CONNACK accepted (`session_present`).
    ConnAck {
        /// Session present flag.
        session_present: bool,
    },
    /// PUBACK for a packet id.
    PubAck(u16),
    /// PINGRESP.
    PingResp,
    /// Anything else (skipped).
    Other(u8),
}

/// Decodes the packet at the start of `bytes`: the packet and how many bytes it used.
/// [`MqttError::Incomplete`] means "read more and call again".
pub fn decode(bytes: &[u8]) -> Result<(Incoming, usize), MqttError> {
    let (&first, rest) = bytes.split_first().ok_or(MqttError::Incomplete)?;
    let mut len = 0usize;
    let mut used = 0usize;
    for (i, &b) in rest.iter().enumerate().take(4) {
        len |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            used = i + 1;
            break;
        }
    }
    if used == 0 {
        return if rest.len() >= 4 {
            Err(MqttError::Malformed)
        } else {
            Err(MqttError::Incomplete)
        };
    }
    let body = rest.get(used..used + len).ok_or(MqttError::Incomplete)?;
    let total = 1 + used + len;
    let packet = match (first >> 4, body) {
        (2, [flags, code]) => {
            if *code != 0 {
                return Err(MqttError::Refused(*code));
            }
            Incoming::ConnAck {
                session_present: flags & 1 == 1,
            }
        }
        (4, [hi, lo]) => Incoming::PubAck(u16::from_be_bytes([*hi, *lo])),
        (13, []) => Incoming::PingResp,
        (2 | 4 | 13, _) => return Err(MqttError::Malformed),
        (kind, _) => Incoming::Other(kind),
    };
    Ok((packet, total))
}

/// The uplink topic: `{prefix}/{store}/nodes/{node}/uplink` (prefix usually `footfall/v1`).
pub fn uplink_topic<const N: usize>(
    prefix: &str,
    store: &str,
    node: u16,
) -> Result<heapless::String<N>, MqttError> {
    use core::fmt::Write as _;
    let mut t = heapless::String::new();
    write!(t, "{prefix}/{store}/nodes/{node}/uplink").map_err(|_| MqttError::TooLong)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_bytes() {
        let mut buf = [0u8; 64];
        let n = encode_connect(
            &Connect {
                client_id: "n1",
                keep_alive_s: 60,
                username: Some("u"),
                password: Some(b"p"),
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            &buf[..n],
            &[
                0x10, 20, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 2, b'n', b'1', 0, 1,
                b'u', 0, 1, b'p'
            ]
        );
        // Password without a username is not sent (MQTT 3.1.1 §3.1.2.9).
        let n = encode_connect(
            &Connect {
                client_id: "n1",
                keep_alive_s: 60,
                username: None,
                password: Some(b"p"),
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(buf[9], 0x02);
        assert_eq!(n, 16);
    }

    #[test]
    fn publish_bytes_and_long_remaining_length() {
        let mut buf = [0u8; 400];
        let n = encode_publish_qos1("a/b", 7, &[1, 2], false, &mut buf).unwrap();
        assert_eq!(&buf[..n], &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, 1, 2]);
        let n = encode_publish_qos1("t", 1, &[0; 244], true, &mut buf).unwrap();
        // 2 + 1 + 2 + 244 = 249 = 0xF9 → varint F9 01.
        assert_eq!(&buf[..3], &[0x3A, 0xF9, 0x01]);
        assert_eq!(n, 3 + 249);
        assert_eq!(
            encode_publish_qos1("t", 1, &[0; 244], false, &mut buf[..100]),
            Err(MqttError::BufferTooSmall)
        );
        assert_eq!(
            encode_publish_qos1("t", 0, &[], false, &mut buf),
            Err(MqttError::Malformed)
        );
    }

    #[test]
    fn decodes_broker_packets() {
        assert_eq!(
            decode(&[0x20, 2, 0, 0]),
            Ok((
                Incoming::ConnAck {
                    session_present: false
                },
                4
            ))
        );
        assert_eq!(decode(&[0x20, 2, 0, 5]), Err(MqttError::Refused(5)));
        assert_eq!(
            decode(&[0x40, 2, 0x01, 0x02, 0xD0]),
            Ok((Incoming::PubAck(0x0102), 4))
        );
        assert_eq!(decode(&[0xD0, 0]), Ok((Incoming::PingResp, 2)));
        assert_eq!(decode(&[0x40, 2, 1]), Err(MqttError::Incomplete));
        assert_eq!(decode(&[0x40]), Err(MqttError::Incomplete));
        assert_eq!(decode(&[0x40, 3, 1, 2, 3]), Err(MqttError::Malformed));
        assert_eq!(
            decode(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(MqttError::Malformed)
        );
        assert_eq!(decode(&[0x90, 3, 0, 1, 0]), Ok((Incoming::Other(9), 5)));
    }

    #[test]
    fn topic() {
        let t: heapless::String<64> = uplink_topic("footfall/v1", "store-1", 12).unwrap();
        assert_eq!(t.as_str(), "footfall/v1/store-1/nodes/12/uplink");
        assert!(uplink_topic::<8>("footfall/v1", "s", 1).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok((_, used)) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
