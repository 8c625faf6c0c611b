//! LIS3DH 3-axis accelerometer over embedded-hal 1.0 I2C (ST datasheet DocID17530 rev 2).
//!
//! Only what a tag needs: identify the part, set output data rate and full scale in
//! high-resolution (12-bit) mode, read X/Y/Z in milli-g, and a motion magnitude.

use embedded_hal::i2c::I2c;

/// I2C address with SA0/SDO tied low.
pub const ADDR_SA0_LOW: u8 = 0x18;
/// I2C address with SA0/SDO tied high (the default on most breakout boards).
pub const ADDR_SA0_HIGH: u8 = 0x19;

/// Register addresses.
mod reg {
    pub const WHO_AM_I: u8 = 0x0F;
    pub const CTRL_REG1: u8 = 0x20;
    pub const CTRL_REG4: u8 = 0x23;
    pub const OUT_X_L: u8 = 0x28;
    /// Sub-address MSB: auto-increment for multi-byte reads.
    pub const AUTO_INCREMENT: u8 = 0x80;
}

/// WHO_AM_I value of a LIS3DH.
pub const DEVICE_ID: u8 = 0x33;

/// Output data rate (CTRL_REG1 ODR[3:0]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum DataRate {
    /// Power down.
    PowerDown = 0b0000,
    /// 1 Hz.
    Hz1 = 0b0001,
    /// 10 Hz.
    Hz10 = 0b0010,
    /// 25 Hz.
    Hz25 = 0b0011,
    /// 50 Hz.
    Hz50 = 0b0100,
    /// 100 Hz.
    Hz100 = 0b0101,
    /// 200 Hz.
    Hz200 = 0b0110,
    /// 400 Hz.
    Hz400 = 0b0111,
}

/// Full scale (CTRL_REG4 FS[1:0]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Scale {
    /// ±2 g, 1 mg/digit in high-resolution mode.
    G2 = 0b00,
    /// ±4 g, 2 mg/digit.
    G4 = 0b01,
    /// ±8 g, 4 mg/digit.
    G8 = 0b10,
    /// ±16 g, 12 mg/digit.
    G16 = 0b11,
}

impl Scale {
    /// Sensitivity in high-resolution mode, mg per 12-bit digit (datasheet table 4).
    pub const fn mg_per_digit(self) -> i32 {
        match self {
            Scale::G2 => 1,
            Scale::G4 => 2,
            Scale::G8 => 4,
            Scale::G16 => 12,
        }
    }
}

/// Driver error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The bus failed.
    I2c(E),
    /// WHO_AM_I did not read [`DEVICE_ID`].
    WrongDevice {
        /// What it read.
        who_am_i: u8,
    },
}

/// Acceleration, milli-g.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Accel {
    /// X axis.
    pub x: i32,
    /// Y axis.
    pub y: i32,
    /// Z axis.
    pub z: i32,
}

impl Accel {
    /// Magnitude `sqrt(x² + y² + z²)`, milli-g (saturating at `u16::MAX`).
    pub fn magnitude_mg(&self) -> u16 {
        let sq = |v: i32| u64::from(v.unsigned_abs()).pow(2);
        let m = (sq(self.x) + sq(self.y) + sq(self.z)).isqrt();
        u16::try_from(m).unwrap_or(u16::MAX)
    }
}

/// A LIS3DH on an I2C bus.
#[derive(Debug)]
pub struct Lis3dh<I> {
    i2c: I,
    addr: u8,
    scale: Scale,
}

impl<I: I2c> Lis3dh<I> {
    /// Checks WHO_AM_I and configures `rate` and `scale` with all axes on, high-resolution mode
    /// and block data update (so the low and high bytes of a sample always match).
    pub fn new(i2c: I, addr: u8, rate: DataRate, scale: Scale) -> Result<Self, Error<I::Error>> {
        let mut dev = Self { i2c, addr, scale };
        let who_am_i = dev.read_reg(reg::WHO_AM_I)?;
        if who_am_i != DEVICE_ID {
            return Err(Error::WrongDevice { who_am_i });
        }
        dev.set_rate(rate)?;
        dev.set_scale(scale)?;
        Ok(dev)
    }

    /// Sets the output data rate (X, Y, Z enabled, normal-power).
    pub fn set_rate(&mut self, rate: DataRate) -> Result<(), Error<I::Error>> {
        self.write_reg(reg::CTRL_REG1, ((rate as u8) << 4) | 0b0111)
    }

    /// Sets the full scale, high-resolution on, block data update on.
    pub fn set_scale(&mut self, scale: Scale) -> Result<(), Error<I::Error>> {
        const BDU: u8 = 0x80;
        const HR: u8 = 0x08;
        self.write_reg(reg::CTRL_REG4, BDU | ((scale as u8) << 4) | HR)?;
        self.scale = scale;
        Ok(())
    }

    /// Reads one sample, milli-g.
    pub fn read_mg(&mut self) -> Result<Accel, Error<I::Error>> {
        let mut raw = [0u8; 6];
        self.i2c
            .write_read(self.addr, &[reg::OUT_X_L | reg::AUTO_INCREMENT], &mut raw)
            .map_err(Error::I2c)?;
        let [xl, xh, yl, yh, zl, zh] = raw;
        // 12-bit left-justified two's complement.
        let conv = |lo: u8, hi: u8| {
            i32::from(i16::from_le_bytes([lo, hi]) >> 4) * self.scale.mg_per_digit()
        };
        Ok(Accel {
            x: conv(xl, xh),
            y: conv(yl, yh),
            z: conv(zl, zh),
        })
    }

    /// Gives the bus back.
    pub fn release(self) -> I {
        self.i2c
    }

    fn read_reg(&mut self, reg: u8) -> Result<u8, Error<I::Error>> {
        let mut b = [0u8];
        self.i2c
            .write_read(self.addr, &[reg], &mut b)
            .map_err(Error::I2c)?;
        let [v] = b;
        Ok(v)
    }

    fn write_reg(&mut self, reg: u8, value: u8) -> Result<(), Error<I::Error>> {
        self.i2c.write(self.addr, &[reg, value]).map_err(Error::I2c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    use std::vec;

    const A: u8 = ADDR_SA0_HIGH;

    fn init() -> std::vec::Vec<Transaction> {
        vec![
            Transaction::write_read(A, vec![0x0F], vec![0x33]),
            Transaction::write(A, vec![0x20, 0x47]),
            Transaction::write(A, vec![0x23, 0x98]),
        ]
    }

    #[test]
    fn configures_and_reads_mg() {
        let mut t = init();
        // +1 g on Z at ±4 g (2 mg/digit): 500 digits = 0x1F4 << 4 = 0x1F40; X = -1 digit; Y = 0.
        t.push(Transaction::write_read(
            A,
            vec![0xA8],
            vec![0xF0, 0xFF, 0x00, 0x00, 0x40, 0x1F],
        ));
        let mut i2c = Mock::new(&t);
        let mut dev = Lis3dh::new(i2c.clone(), A, DataRate::Hz50, Scale::G4).unwrap();
        let a = dev.read_mg().unwrap();
        assert_eq!(
            a,
            Accel {
                x: -2,
                y: 0,
                z: 1000
            }
        );
        assert_eq!(a.magnitude_mg(), 1000);
        i2c.done();
    }

    #[test]
    fn rejects_another_part() {
        let mut i2c = Mock::new(&[Transaction::write_read(A, vec![0x0F], vec![0x44])]);
        assert_eq!(
            Lis3dh::new(i2c.clone(), A, DataRate::Hz10, Scale::G2).err(),
            Some(Error::WrongDevice { who_am_i: 0x44 })
        );
        i2c.done();
    }

    #[test]
    fn bus_errors_surface() {
        let mut t = init();
        t.push(Transaction::write_read(A, vec![0xA8], vec![0; 6]).with_error(ErrorKind::Other));
        let mut i2c = Mock::new(&t);
        let mut dev = Lis3dh::new(i2c.clone(), A, DataRate::Hz50, Scale::G4).unwrap();
        assert_eq!(dev.read_mg(), Err(Error::I2c(ErrorKind::Other)));
        i2c.done();
    }

    #[test]
    fn magnitude_saturates() {
        let a = Accel {
            x: 16_000 * 12,
            y: 16_000 * 12,
            z: 0,
        };
        assert_eq!(a.magnitude_mg(), u16::MAX);
    }
}
