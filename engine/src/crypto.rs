//! Keys derived from the gateway secret, and the keyed functions built on them.
//!
//! One 32-byte secret feeds a NIST SP 800-108 counter-mode KDF with AES-256-CMAC as the PRF.
//! Each purpose gets its own 128-bit key (domain separation by label):
//!
//! | label | used for |
//! |---|---|
//! | `footfall/fingerprint` | SipHash-2-4 key for the device table (not an output) |
//! | `footfall/salt` + period | the pseudonym salt of one rotation period |
//! | `footfall/campaign` | stable campaign ids of opted-in devices |
//! | `footfall/event-id` | the AES-128 permutation that turns sequence numbers into event ids |
//!
//! Pseudonyms and campaign ids are AES-128-CMAC (a PRF) of the canonical device key; without
//! the secret they can be neither computed nor linked across salt periods.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use cmac::{Cmac, Mac};

/// Used only when no secret is configured; documented as insecure.
const PUBLIC_FALLBACK_SECRET: [u8; 32] = *b"footfall-public-fallback-secret!";

/// Derives 16-byte purpose keys from the gateway secret.
pub(crate) struct Kdf {
    prf: Cmac<Aes256>,
}

impl Kdf {
    pub(crate) fn new(secret: Option<[u8; 32]>) -> Self {
        let key = secret.unwrap_or(PUBLIC_FALLBACK_SECRET);
        Self {
            prf: <Cmac<Aes256> as KeyInit>::new(&key.into()),
        }
    }

    /// SP 800-108 counter mode, one block: `PRF(K, [1] ‖ label ‖ 0x00 ‖ context ‖ [0,0,0,128])`.
    pub(crate) fn derive(&self, label: &[u8], context: &[u8]) -> [u8; 16] {
        let mut mac = self.prf.clone();
        mac.update(&[1]);
        mac.update(label);
        mac.update(&[0]);
        mac.update(context);
        mac.update(&128u32.to_be_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A keyed pseudo-random function with 128-bit output (AES-128-CMAC).
#[derive(Clone)]
pub(crate) struct Prf {
    mac: Cmac<Aes128>,
}

impl Prf {
    pub(crate) fn new(key: [u8; 16]) -> Self {
        Self {
            mac: <Cmac<Aes128> as KeyInit>::new(&key.into()),
        }
    }
    pub(crate) fn eval(&self, msg: &[u8]) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }
}

/// A keyed permutation of 128-bit blocks (AES-128): distinct inputs give distinct outputs.
#[derive(Clone)]
pub(crate) struct Prp {
    cipher: Aes128,
}

impl Prp {
    pub(crate) fn new(key: [u8; 16]) -> Self {
        Self {
            cipher: Aes128::new(&key.into()),
        }
    }
    pub(crate) fn encrypt(&self, block: [u8; 16]) -> [u8; 16] {
        let mut b = block.into();
        self.cipher.encrypt_block(&mut b);
        b.into()
    }
}

/// SipHash-2-4 with a secret key: the device table's index hash. Keyed so that an attacker
/// choosing advertised addresses cannot aim for collisions.
#[derive(Clone, Copy)]
pub(crate) struct Fingerprinter {
    k0: u64,
    k1: u64,
}

impl Fingerprinter {
    pub(crate) fn new(key: [u8; 16]) -> Self {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = key;
        Self {
            k0: u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            k1: u64::from_le_bytes([i, j, k, l, m, n, o, p]),
        }
    }

    #[allow(deprecated)] // std's SipHasher is SipHash-2-4: deprecated for HashMap use, not broken.
    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = std::hash::SipHasher::new_with_keys(self.k0, self.k1);
        h.write(bytes);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_matches_reference_vector() {
        // SipHash-2-4 paper (Aumasson & Bernstein 2012), appendix A: key 00..0f, message 00..0e.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: [u8; 15] = core::array::from_fn(|i| i as u8);
        assert_eq!(Fingerprinter::new(key).hash(&msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn cmac_matches_rfc4493_example_2() {
        // RFC 4493 §4, Example 2: 16-byte message.
        let key = [
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c,
        ];
        let msg = [
            0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93,
            0x17, 0x2a,
        ];
        let want = [
            0x07, 0x0a, 0x16, 0xb4, 0x6b, 0x4d, 0x41, 0x44, 0xf7, 0x9b, 0xdd, 0x9d, 0xd0, 0x4a,
            0x28, 0x7c,
        ];
        assert_eq!(Prf::new(key).eval(&msg), want);
    }

    #[test]
    fn derived_keys_are_domain_separated() {
        let kdf = Kdf::new(Some([7; 32]));
        assert_ne!(kdf.derive(b"a", b""), kdf.derive(b"b", b""));
        assert_ne!(
            kdf.derive(b"salt", &1u64.to_be_bytes()),
            kdf.derive(b"salt", &2u64.to_be_bytes())
        );
        assert_ne!(
            Kdf::new(Some([8; 32])).derive(b"a", b""),
            kdf.derive(b"a", b"")
        );
        assert_eq!(
            kdf.derive(b"a", b"x"),
            Kdf::new(Some([7; 32])).derive(b"a", b"x")
        );
    }

    #[test]
    fn prp_is_injective_on_sequence_numbers() {
        let prp = Prp::new([3; 16]);
        let mut seen = std::collections::HashSet::new();
        for seq in 0u64..2000 {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&seq.to_be_bytes());
            assert!(seen.insert(prp.encrypt(b)));
        }
    }
}
