//! What a scanner hands the anchor role: one advertising report at a time.

use footfall_proto::frame::AddressType;

/// One received advertisement (legacy or extended), borrowed from the scanner's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvReport<'a> {
    /// Advertiser address, most significant byte first (HCI carries it LSB first: reverse it).
    pub addr: [u8; 6],
    /// HCI address type: 0 public, 1 random, 2 public identity, 3 random static identity.
    pub addr_type: u8,
    /// Received signal strength, dBm (127 = not available).
    pub rssi: i8,
    /// The AD structures, as received.
    pub data: &'a [u8],
}

impl AdvReport<'_> {
    /// The address type as the frame carries it. For random addresses the two most significant
    /// bits tell static (`11`), resolvable (`01`) and non-resolvable (`00`) apart.
    pub fn address_type(&self) -> AddressType {
        address_type(self.addr_type, self.addr[0])
    }
}

/// Maps an HCI address type and the address's most significant byte to [`AddressType`].
pub fn address_type(hci_type: u8, msb: u8) -> AddressType {
    match hci_type {
        0 | 2 => AddressType::Public,
        3 => AddressType::RandomStatic,
        1 => match msb >> 6 {
            0b11 => AddressType::RandomStatic,
            0b01 => AddressType::RandomResolvable,
            0b00 => AddressType::RandomNonResolvable,
            _ => AddressType::Unknown,
        },
        _ => AddressType::Unknown,
    }
}

/// A source of advertising reports (blocking form, used by the QEMU run and tests; board
/// builds feed [`crate::anchor::Anchor::on_report`] straight from their async scan handler).
pub trait Scanner {
    /// The next report, or `None` when there is nothing more (end of a recording).
    fn next_report(&mut self) -> Option<(u64, AdvReport<'_>)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_subtypes_follow_the_top_two_bits() {
        assert_eq!(address_type(1, 0xC0), AddressType::RandomStatic);
        assert_eq!(address_type(1, 0x40), AddressType::RandomResolvable);
        assert_eq!(address_type(1, 0x3F), AddressType::RandomNonResolvable);
        assert_eq!(address_type(1, 0x80), AddressType::Unknown);
        assert_eq!(address_type(0, 0xFF), AddressType::Public);
        assert_eq!(address_type(2, 0x00), AddressType::Public);
        assert_eq!(address_type(3, 0x00), AddressType::RandomStatic);
        assert_eq!(address_type(9, 0x00), AddressType::Unknown);
    }
}
