//! The example consumer binary against a real Mosquitto (started here on a free 127.0.0.1 port)
//! and a webhook served by this test: every trigger reaches the webhook exactly once; duplicates
//! and expired triggers never do; a failing webhook is retried.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mosquitto(dir: &std::path::Path) -> (Proc, u16) {
    let exe = [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("mosquitto is not installed: run `bash scripts/setup.sh test`");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let mut f = std::fs::File::create(&conf).expect("conf");
    write!(
        f,
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    .expect("conf");
    let child = Command::new(exe)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, port)
}

#[derive(Default)]
struct Hook {
    /// Every request's event id, including refused ones.
    posts: Vec<String>,
    /// Ids answered 2xx, in order.
    accepted: Vec<String>,
    /// Answer 503 to the first n POSTs of an id.
    fail_first: HashMap<String, u32>,
    content_types: Vec<String>,
}

async fn serve_webhook(listener: TcpListener, hook: Arc<Mutex<Hook>>, notify: Arc<Notify>) {
    while let Ok((mut sock, _)) = listener.accept().await {
        let hook = hook.clone();
        let notify = notify.clone();
        tokio::spawn(async move {
            // A minimal HTTP/1.1 server: headers, then Content-Length bytes of body.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + len {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let event: Value =
                serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            let status = {
                let mut h = hook.lock().expect("hook lock");
                h.posts.push(id.clone());
                if let Some(ct) = head.lines().find_map(|l| l.strip_prefix("content-type:")) {
                    h.content_types.push(ct.trim().to_owned());
                }
                match h.fail_first.get_mut(&id) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        "503 Service Unavailable"
                    }
                    _ => {
                        h.accepted.push(id);
                        "204 No Content"
                    }
                }
            };
            notify.notify_waiters();
            let resp =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn trigger(n: u64, expires_in_s: i64) -> Value {
    let now = SystemTime::now();
    let expires = if expires_in_s >= 0 {
        now + Duration::from_secs(expires_in_s.unsigned_abs())
    } else {
        now - Duration::from_secs(expires_in_s.unsigned_abs())
    };
    json!({
        "specversion": "1.0",
        "id": format!("{:032x}", 0xbeef_0000_u64 + n),
        "source": "/footfall/store-042/gateway/gw-1",
        "type": "footfall.campaign.trigger",
        "time": rfc3339(now),
        "subject": "wine-promo",
        "datacontenttype": "application/json",
        "data": {
            "store": "store-042", "campaign": "wine-promo", "zone": "wine",
            "person": format!("c-{n:032x}"), "device_kind": "phone", "confidence": 0.9,
            "dwell_ms": 30000, "engagement": null, "reason": {"rule": "campaign", "nodes": [1]},
            "expires_at": rfc3339(expires), "payload": {"offer": "wine-10"}, "seq": n
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trigger_reaches_the_webhook_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, port) = start_mosquitto(dir.path());

    let hook = Arc::new(Mutex::new(Hook::default()));
    let notify = Arc::new(Notify::new());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind webhook");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(serve_webhook(listener, hook.clone(), notify.clone()));

    // The consumer, as a user runs it.
    let child = Command::new(env!("CARGO_BIN_EXE_footfall-trigger-consumer"))
        .args([
            "--port",
            &port.to_string(),
            "--webhook",
            &url,
            "--client-id",
            "rs-consumer-test",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start consumer");
    let mut consumer = Proc(child);
    let stdout = consumer.0.stdout.take().expect("stdout");
    let (line_tx, line_rx) = std_mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut expect = |prefix: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = line_rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {prefix:?} line; saw {lines:?}"));
            lines.push(line.clone());
            if line.starts_with(prefix) {
                return lines.clone();
            }
        }
    };
    expect("subscribed ");

    // The "gateway": publishes synthetic, schema-shaped triggers with MQTT 5 properties.
    let mut opts = MqttOptions::new("test-gateway", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(opts, 32);
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = ev {
                let _ = ack_tx.send(());
            }
        }
    });
    let publish = |t: Value, expiry: Option<u32>| {
        let client = client.clone();
        async move {
            let props = PublishProperties {
                content_type: Some("application/cloudevents+json".into()),
                message_expiry_interval: expiry,
                ..Default::default()
            };
            client
                .publish_with_properties(
                    "footfall/v1/store-042/campaigns/wine-promo",
                    QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&t).expect("json"),
                    props,
                )
                .await
                .expect("publish");
        }
    };

    let (t1, t2, t3, t4, last) = (
        trigger(1, 300),
        trigger(2, 300),
        trigger(3, -1),
        trigger(4, 300),
        trigger(99, 300),
    );
    let id = |t: &Value| t["id"].as_str().unwrap_or_default().to_owned();
    hook.lock().expect("lock").fail_first.insert(id(&t2), 2);
    let sequence = [
        (t1.clone(), Some(300)),
        (t1.clone(), Some(300)), // redelivery: same id
        (t2.clone(), Some(300)), // webhook fails twice, then accepts
        (t3.clone(), Some(300)), // data.expires_at already passed
        (t4.clone(), None),      // no MQTT expiry
        (t1.clone(), Some(300)), // late duplicate
        (last.clone(), Some(300)),
    ];
    for (t, expiry) in sequence {
        publish(t, expiry).await;
        tokio::time::timeout(WAIT, ack_rx.recv())
            .await
            .expect("broker acked the publish");
    }

    // One consumer handles triggers in order: once `last` is accepted, all before it are decided.
    let last_id = id(&last);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let waiting = notify.notified();
        if hook.lock().expect("lock").accepted.contains(&last_id) {
            break;
        }
        tokio::time::timeout_at(deadline, waiting)
            .await
            .expect("webhook accepted the last trigger");
    }
    let seen = expect(&format!("posted {last_id}"));
    drop(consumer);

    let h = hook.lock().expect("lock");
    assert_eq!(h.accepted, vec![id(&t1), id(&t2), id(&t4), last_id]);
    assert_eq!(
        h.posts.iter().filter(|p| **p == id(&t2)).count(),
        3,
        "two refusals, one success"
    );
    assert!(!h.posts.contains(&id(&t3)), "an expired trigger was posted");
    assert!(h
        .content_types
        .iter()
        .all(|c| c == "application/cloudevents+json"));
    let count = |what: &str| seen.iter().filter(|l| l.starts_with(what)).count();
    assert_eq!(count("duplicate "), 2, "{seen:?}");
    assert_eq!(count("expired "), 1, "{seen:?}");
    assert_eq!(count("posted "), 4, "{seen:?}");
}
