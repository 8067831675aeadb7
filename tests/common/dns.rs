//! A real DNS server on loopback for the bot checks: dnsmasq answering only from the
//! records it is given (authoritative for the reverse zones and the listed domains, so a
//! missing record is NXDOMAIN), never the internet.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    /// `zones`: domains answered from `records` alone; `records`: dnsmasq options such as
    /// `--host-record=name,ip` (A/AAAA and PTR) or `--ptr-record=arpa-name,name`.
    pub fn start(zones: &[&str], records: &[&str]) -> Dnsmasq {
        // The port was free for UDP a moment ago; dnsmasq also needs it for TCP, where a
        // test's listener may hold it. Then dnsmasq exits, and another port is tried.
        for _ in 0..5 {
            if let Some(d) = Self::try_start(zones, records) {
                return d;
            }
        }
        panic!("dnsmasq did not start");
    }

    fn try_start(zones: &[&str], records: &[&str]) -> Option<Dnsmasq> {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("dnsmasq is needed (Debian dnsmasq-base; scripts/test installs it)");
        let mut args: Vec<String> = [
            "--keep-in-foreground",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=nobody",
            "--group=nogroup",
            "--local=/in-addr.arpa/",
            "--local=/ip6.arpa/",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--port={port}"));
        args.extend(zones.iter().map(|z| format!("--local=/{z}/")));
        args.extend(records.iter().map(|r| r.to_string()));
        let mut child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Ready when it answers a query (A example.).
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e',
            0, 0, 1, 0, 1,
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = probe.send_to(&query, addr);
            let mut buf = [0u8; 512];
            if probe.recv_from(&mut buf).is_ok() {
                return Some(Dnsmasq { child, addr });
            }
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
