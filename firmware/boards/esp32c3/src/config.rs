//! Build-time settings (environment variables read by `option_env!`; see docs/firmware.md).

/// Identity baked in by build.rs from FOOTFALL_NODE_ID / FOOTFALL_NODE_KEY.
pub mod provision {
    include!(concat!(env!("OUT_DIR"), "/provision.rs"));
}

/// Wi-Fi network name.
pub const WIFI_SSID: &str = match option_env!("FOOTFALL_WIFI_SSID") {
    Some(s) => s,
    None => "footfall",
};
/// Wi-Fi WPA2 passphrase (empty: open network).
pub const WIFI_PASSWORD: &str = match option_env!("FOOTFALL_WIFI_PASSWORD") {
    Some(s) => s,
    None => "",
};
/// Broker host: an IPv4 literal or a DNS name.
pub const MQTT_HOST: &str = match option_env!("FOOTFALL_MQTT_HOST") {
    Some(s) => s,
    None => "192.168.1.10",
};
/// Broker port (plain MQTT; the gateway's embedded broker listens on 1883 by default).
pub const MQTT_PORT: u16 = match option_env!("FOOTFALL_MQTT_PORT") {
    Some(s) => parse_port(s),
    None => 1883,
};
/// Store id in the topic `footfall/v1/{store}/nodes/{node}/uplink`.
pub const STORE: &str = match option_env!("FOOTFALL_STORE") {
    Some(s) => s,
    None => "store-1",
};
/// Topic prefix.
pub const TOPIC_PREFIX: &str = "footfall/v1";

const fn parse_port(s: &str) -> u16 {
    let b = s.as_bytes();
    let mut v: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        let d = b[i];
        assert!(
            d.is_ascii_digit(),
            "FOOTFALL_MQTT_PORT must be a decimal port"
        );
        v = v * 10 + (d - b'0') as u32;
        assert!(v <= 65535, "FOOTFALL_MQTT_PORT must be <= 65535");
        i += 1;
    }
    assert!(v > 0, "FOOTFALL_MQTT_PORT must not be 0");
    v as u16
}
