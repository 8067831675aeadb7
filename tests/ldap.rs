//! LDAP authentication against a real OpenLDAP slapd started for the test.
mod common;
use base64::Engine;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Slapd {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LDIF: &str = "dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=test
objectClass: organizationalUnit
ou: groups

dn: uid=dave,ou=people,dc=example,dc=test
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
userPassword: dave-pass

dn: uid=erin,ou=people,dc=example,dc=test
objectClass: inetOrgPerson
uid: erin
cn: Erin
sn: E
userPassword: erin-pass

dn: cn=ops,ou=groups,dc=example,dc=test
objectClass: groupOfNames
cn: ops
member: uid=dave,ou=people,dc=example,dc=test
";

fn slapd() -> Slapd {
    let bin = ["/usr/sbin/slapd", "/usr/sbin/slapadd"];
    for b in bin {
        assert!(
            std::path::Path::new(b).exists(),
            "{b} missing: install Debian's slapd (scripts/test does)"
        );
    }
    let dir = temp_dir("slapd");
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let conf = dir.join("slapd.conf");
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
database mdb
maxsize 10485760
suffix \"dc=example,dc=test\"
rootdn \"cn=admin,dc=example,dc=test\"
rootpw admin-secret
directory {d}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by anonymous auth
",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("data.ldif"), LDIF).unwrap();
    let out = Command::new("/usr/sbin/slapadd")
        .arg("-f")
        .arg(&conf)
        .arg("-l")
        .arg(dir.join("data.ldif"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "slapadd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let child = Command::new("/usr/sbin/slapd")
        .arg("-f")
        .arg(&conf)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .args(["-d", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "slapd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Slapd { child, port, dir }
}

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ldap_bind_groups_and_injection() {
    let ldap = slapd();
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        r#"auth:
  ldap:
    url: ldap://127.0.0.1:{port}
    bind_dn: "uid={{user}},ou=people,dc=example,dc=test"
    group_base: "ou=groups,dc=example,dc=test"
    cache_ttl: 30s
upstreams:
{up}routes:
  - name: ldap
    paths: ["/ldap"]
    upstream: u
    auth: {{ methods: [ldap] }}
  - name: ops-only
    paths: ["/ops"]
    upstream: u
    auth: {{ methods: [ldap] }}
    authorize: {{ groups: [ops] }}
"#,
        port = ldap.port,
        up = upstream_yaml("u", &[up.addr], "")
    ));
    let c = client();
    let get = |path: &str, auth: String| {
        let c = c.clone();
        let url = gw.url(path);
        async move {
            let r = c
                .get(url)
                .header("Authorization", auth)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (s, v) = get("/ldap", basic("dave", "dave-pass")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-consumer-id"], "dave");
    assert_eq!(v["headers"]["x-consumer-groups"], "ops");
    assert_eq!(v["headers"]["x-auth-method"], "ldap");
    assert_eq!(get("/ops", basic("dave", "dave-pass")).await.0, 200);
    assert_eq!(
        get("/ops", basic("erin", "erin-pass")).await.0,
        403,
        "erin is not in ops"
    );
    assert_eq!(get("/ldap", basic("dave", "wrong")).await.0, 401);
    // Injection and the unauthenticated-bind trap.
    assert_eq!(get("/ldap", basic("dave", "")).await.0, 401);
    assert_eq!(get("/ldap", basic("*", "dave-pass")).await.0, 401);
    assert_eq!(
        get("/ldap", basic("dave,ou=people,dc=example,dc=test", "x"))
            .await
            .0,
        401
    );
    // Cached: still accepted with the directory gone, within cache_ttl.
    drop(ldap);
    assert_eq!(get("/ldap", basic("dave", "dave-pass")).await.0, 200);
    assert_eq!(get("/ldap", basic("erin", "wrong-again")).await.0, 401);
}
