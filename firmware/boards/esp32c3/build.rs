//! Build script: esp-hal's linker script, the node identity (../provision.rs) and the Wi-Fi /
//! MQTT settings (FOOTFALL_WIFI_SSID, FOOTFALL_WIFI_PASSWORD, FOOTFALL_MQTT_HOST,
//! FOOTFALL_MQTT_PORT, FOOTFALL_STORE; read with `option_env!` in src/config.rs).
use std::{env, path::PathBuf};

include!("../provision.rs");

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rustc-link-arg-bins=-Tlinkall.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../provision.rs");
    for var in [
        "FOOTFALL_WIFI_SSID",
        "FOOTFALL_WIFI_PASSWORD",
        "FOOTFALL_MQTT_HOST",
        "FOOTFALL_MQTT_PORT",
        "FOOTFALL_STORE",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    provision(&out);
}
