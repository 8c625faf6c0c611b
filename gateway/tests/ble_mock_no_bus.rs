//! With no D-Bus at all, the BLE source fails with a clear error naming what is missing — never
//! a panic. Its own test binary (process): libdbus keeps the first bus address it reads, so this
//! cannot share a process with `ble_mock.rs`, which points the system bus at a private daemon.

use std::collections::HashMap;
use std::time::Duration;

use footfall_gateway::source::ble::{BleConfig, BleError, BleSource};
use footfall_gateway::source::Source;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[test]
fn no_dbus_is_a_clear_error() {
    // A bus address that cannot exist; set before anything in this process touches D-Bus.
    std::env::set_var(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/footfall-test/bus.sock",
    );
    let cfg = BleConfig {
        enabled: true,
        ..BleConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let e = tokio::time::timeout(Duration::from_secs(15), BleSource::find_adapter(&cfg))
            .await
            .expect("answers in time")
            .expect_err("no bus must be an error");
        assert!(matches!(e, BleError::NoDbus(_)), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "no Bluetooth adapter found: is bluetoothd running? (D-Bus system bus not available: "
            ),
            "{msg}"
        );
        assert!(msg.contains("/nonexistent/footfall-test/bus.sock"), "{msg}");

        // Through the Source trait: the same error, returned rather than panicking.
        let src = BleSource::new(cfg, HashMap::new(), None).expect("source");
        let (tx, _rx) = mpsc::channel(8);
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            Box::new(src).run(tx, CancellationToken::new()),
        )
        .await
        .expect("run returns in time");
        assert_eq!(r.err().map(|e| e.to_string()), Some(msg));
    });
}
