//! The Wi-Fi uplink: publishes queued frames over MQTT (QoS 1) and removes each from the
//! anchor's queue only when its PUBACK arrives.

use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpAddress, Stack};
use embassy_time::{with_timeout, Duration, Timer};
use embedded_io_async::Write;
use footfall_firmware::mqtt::{self, Connect, Incoming};
use footfall_proto::frame::MAX_FRAME_LEN;
use log::{info, warn};

use crate::config::{self, provision};
use crate::SharedAnchor;

const KEEP_ALIVE_S: u16 = 60;
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug)]
enum SessionError {
    Tcp,
    Mqtt(mqtt::MqttError),
    Timeout,
}

#[embassy_executor::task]
pub async fn mqtt_task(stack: Stack<'static>, anchor: &'static SharedAnchor) {
    let topic: heapless::String<96> =
        match mqtt::uplink_topic(config::TOPIC_PREFIX, config::STORE, provision::NODE_ID) {
            Ok(t) => t,
            Err(_) => loop {
                warn!("uplink topic too long: shorten FOOTFALL_STORE");
                Timer::after(Duration::from_secs(60)).await;
            },
        };
    let mut rx = [0u8; 256];
    let mut tx = [0u8; 512];
    let mut packet_id: u16 = 0;
    loop {
        stack.wait_config_up().await;
        let Some(addr) = resolve(stack).await else {
            Timer::after(Duration::from_secs(5)).await;
            continue;
        };
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        socket.set_timeout(Some(Duration::from_secs(u64::from(KEEP_ALIVE_S) * 2)));
        if socket.connect((addr, config::MQTT_PORT)).await.is_err() {
            warn!(
                "broker {}:{} unreachable",
                config::MQTT_HOST,
                config::MQTT_PORT
            );
            Timer::after(Duration::from_secs(5)).await;
            continue;
        }
        match session(&mut socket, anchor, &topic, &mut packet_id).await {
            Ok(()) => {}
            Err(SessionError::Tcp) => warn!("MQTT session ended: TCP closed or failed"),
            Err(SessionError::Timeout) => warn!("MQTT session ended: broker did not answer"),
            Err(SessionError::Mqtt(e)) => warn!("MQTT session ended: {e:?}"),
        }
        socket.abort();
        let _ = socket.flush().await;
        Timer::after(Duration::from_secs(2)).await;
    }
}

async fn resolve(stack: Stack<'static>) -> Option<IpAddress> {
    if let Ok(ip) = config::MQTT_HOST.parse::<core::net::Ipv4Addr>() {
        return Some(IpAddress::Ipv4(ip));
    }
    match stack.dns_query(config::MQTT_HOST, DnsQueryType::A).await {
        Ok(addrs) => addrs.first().copied(),
        Err(e) => {
            warn!("DNS {} failed: {e:?}", config::MQTT_HOST);
            None
        }
    }
}

/// Reads one broker packet (a tiny buffer: CONNACK, PUBACK and PINGRESP are 2–4 bytes).
async fn read_packet(socket: &mut TcpSocket<'_>) -> Result<Incoming, SessionError> {
    let mut buf = [0u8; 16];
    let mut have = 0;
    loop {
        match mqtt::decode(buf.get(..have).unwrap_or(&[])) {
            Ok((p, _)) => return Ok(p),
            Err(mqtt::MqttError::Incomplete) if have < buf.len() => {}
            Err(e) => return Err(SessionError::Mqtt(e)),
        }
        let n = socket
            .read(buf.get_mut(have..).unwrap_or(&mut []))
            .await
            .map_err(|_| SessionError::Tcp)?;
        if n == 0 {
            return Err(SessionError::Tcp);
        }
        have += n;
    }
}

async fn session(
    socket: &mut TcpSocket<'_>,
    anchor: &SharedAnchor,
    topic: &str,
    packet_id: &mut u16,
) -> Result<(), SessionError> {
    let mut client_id: heapless::String<32> = heapless::String::new();
    let _ = core::fmt::Write::write_fmt(
        &mut client_id,
        format_args!("footfall-node-{}", provision::NODE_ID),
    );
    let mut out = [0u8; 16 + 96 + MAX_FRAME_LEN];
    let n = mqtt::encode_connect(
        &Connect {
            client_id: &client_id,
            keep_alive_s: KEEP_ALIVE_S,
            username: None,
            password: None,
        },
        &mut out,
    )
    .map_err(SessionError::Mqtt)?;
    socket
        .write_all(out.get(..n).unwrap_or(&[]))
        .await
        .map_err(|_| SessionError::Tcp)?;
    match with_timeout(ACK_TIMEOUT, read_packet(socket)).await {
        Ok(Ok(Incoming::ConnAck { .. })) => info!("MQTT connected; publishing to {topic}"),
        Ok(Ok(other)) => {
            warn!("expected CONNACK, got {other:?}");
            return Err(SessionError::Mqtt(mqtt::MqttError::Malformed));
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(SessionError::Timeout),
    }
    let mut idle_ms: u64 = 0;
    loop {
        // Copy the oldest frame out of the queue (it stays queued until its PUBACK).
        let mut frame = [0u8; MAX_FRAME_LEN];
        let len = anchor.lock(|a| {
            a.borrow().peek_frame().map(|f| {
                let n = f.len().min(MAX_FRAME_LEN);
                frame[..n].copy_from_slice(&f[..n]);
                n
            })
        });
        let Some(len) = len else {
            Timer::after(Duration::from_millis(200)).await;
            idle_ms += 200;
            if idle_ms >= u64::from(KEEP_ALIVE_S) * 500 {
                idle_ms = 0;
                socket
                    .write_all(&mqtt::PINGREQ)
                    .await
                    .map_err(|_| SessionError::Tcp)?;
                match with_timeout(ACK_TIMEOUT, read_packet(socket)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(SessionError::Timeout),
                }
            }
            continue;
        };
        idle_ms = 0;
        // Packet ids are 1..=65535 (0 is invalid in MQTT).
        *packet_id = packet_id.checked_add(1).unwrap_or(1);
        let n = mqtt::encode_publish_qos1(topic, *packet_id, &frame[..len], false, &mut out)
            .map_err(SessionError::Mqtt)?;
        socket
            .write_all(&out[..n])
            .await
            .map_err(|_| SessionError::Tcp)?;
        loop {
            match with_timeout(ACK_TIMEOUT, read_packet(socket)).await {
                Ok(Ok(Incoming::PubAck(id))) if id == *packet_id => {
                    anchor.lock(|a| a.borrow_mut().frame_sent());
                    break;
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(SessionError::Timeout),
            }
        }
    }
}
