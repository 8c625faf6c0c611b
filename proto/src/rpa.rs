//! Resolvable private addresses (RPA): the Bluetooth `ah` random address hash.
//!
//! A phone that has bonded with an app's peripheral shares its Identity Resolving Key (IRK);
//! its advertising address then changes every ~15 minutes but stays recognisable to whoever
//! holds the IRK. Bluetooth Core Specification v5.4, Vol 3 (Host), Part H (Security Manager),
//! §2.2.2 "Random address hash function ah" defines
//!
//! ```text
//! ah(k, r) = e(k, r') mod 2^24,   r' = 104 zero bits || r   (r: 24 bits)
//! ```
//!
//! with `e` AES-128 where the most significant octet of key and block is the first octet the
//! cipher sees. Vol 6, Part B, §1.3.2.2 lays out the address: the 24 most significant bits are
//! `prand` (top two bits `01`), the 24 least significant are `hash = ah(IRK, prand)`.
//!
//! Byte order: both the IRK and the address are taken **most significant byte first**, as the
//! specification prints them (`0xec02…9b`, `70:81:94:0D:FB:AA`). HCI and SMP carry both
//! least significant byte first; reverse them before calling.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

/// `ah(k, r)`: the 24-bit random address hash of `prand` (`r`, three bytes, MSB first) under
/// `irk` (MSB first). Returns the hash, MSB first.
pub fn ah(irk: &[u8; 16], prand: &[u8; 3]) -> [u8; 3] {
    let cipher = Aes128::new(&(*irk).into());
    let mut block = [0u8; 16];
    let [p0, p1, p2] = *prand;
    let [.., b13, b14, b15] = &mut block;
    (*b13, *b14, *b15) = (p0, p1, p2);
    let mut ga = block.into();
    cipher.encrypt_block(&mut ga);
    let out: [u8; 16] = ga.into();
    let [.., h0, h1, h2] = out;
    [h0, h1, h2]
}

/// Whether `addr` (MSB first, as printed) is a resolvable private address generated from `irk`
/// (MSB first): its top two bits are `01` and its low 24 bits equal `ah(irk, prand)`.
///
/// The hash comparison is not constant-time: an address is public and a mismatch only says
/// "not this IRK".
pub fn resolve_rpa(irk: &[u8; 16], addr: &[u8; 6]) -> bool {
    let [a0, a1, a2, a3, a4, a5] = *addr;
    if a0 >> 6 != 0b01 {
        return false;
    }
    ah(irk, &[a0, a1, a2]) == [a3, a4, a5]
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Bluetooth Core Specification v5.4, Vol 3, Part H, Appendix D.7 "ah Random Address Hash
    /// Functions" sample data: IRK 0xec0234a357c8ad05341010a60a397d9b, prand 0x708194,
    /// M = 0x00000000000000000000000000708194, AES-128 = 0x159d5fb72ebe2311a48c1bdcc40dfbaa,
    /// ah = 0x0dfbaa.
    const IRK: [u8; 16] = [
        0xec, 0x02, 0x34, 0xa3, 0x57, 0xc8, 0xad, 0x05, 0x34, 0x10, 0x10, 0xa6, 0x0a, 0x39, 0x7d,
        0x9b,
    ];

    #[test]
    fn spec_sample_data() {
        assert_eq!(ah(&IRK, &[0x70, 0x81, 0x94]), [0x0d, 0xfb, 0xaa]);
    }

    #[test]
    fn full_block_matches_spec() {
        let cipher = Aes128::new(&IRK.into());
        let mut block = [0u8; 16];
        block[13..].copy_from_slice(&[0x70, 0x81, 0x94]);
        let mut ga = block.into();
        cipher.encrypt_block(&mut ga);
        let expected = [
            0x15, 0x9d, 0x5f, 0xb7, 0x2e, 0xbe, 0x23, 0x11, 0xa4, 0x8c, 0x1b, 0xdc, 0xc4, 0x0d,
            0xfb, 0xaa,
        ];
        assert_eq!(<[u8; 16]>::from(ga), expected);
    }

    #[test]
    fn resolves_spec_address() {
        assert!(resolve_rpa(&IRK, &[0x70, 0x81, 0x94, 0x0d, 0xfb, 0xaa]));
    }

    #[test]
    fn rejects_other_hash_key_or_type() {
        assert!(!resolve_rpa(&IRK, &[0x70, 0x81, 0x94, 0x0d, 0xfb, 0xab]));
        let mut other = IRK;
        other[0] ^= 1;
        assert!(!resolve_rpa(&other, &[0x70, 0x81, 0x94, 0x0d, 0xfb, 0xaa]));
        // Same low bits but a static-random type prefix (11): not an RPA.
        let prand = [0xf0, 0x81, 0x94];
        let h = ah(&IRK, &prand);
        assert!(!resolve_rpa(&IRK, &[0xf0, 0x81, 0x94, h[0], h[1], h[2]]));
    }
}
