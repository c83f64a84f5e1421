//! `leaseline certs init DIR`: a lab PKI for secure mode (RFC 7724 §9) — a
//! CA, a server certificate and a requestor certificate — with the matching
//! configuration snippet. For production, use your own PKI (docs/tls.md).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use leaseline_server::tls::CertIdentity;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub cmd: CertsCmd,
}

#[derive(clap::Subcommand)]
pub enum CertsCmd {
    /// Create a lab CA, a server and a requestor certificate in DIR, and print
    /// the configuration that uses them. Keys are written with mode 0600.
    Init(InitArgs),
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// Directory to write ca.pem, ca-key.pem, server.pem, server-key.pem,
    /// requestor.pem and requestor-key.pem to (created if missing).
    pub dir: PathBuf,
    /// Name the server certificate carries (DNS name or IP address); repeat
    /// for several. Default: localhost and 127.0.0.1.
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    /// Name the requestor certificate carries: a DNS name, an IP address or
    /// a URI (e.g. spiffe://lab/requestor).
    #[arg(long, value_name = "NAME", default_value = "requestor.leaseline.lab")]
    pub requestor_name: String,
    /// Validity of the server and requestor certificates, in days (the CA
    /// gets at least 10 years).
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Replace files that already exist (a new CA: every certificate it
    /// signed stops being trusted).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: CertsArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        CertsCmd::Init(a) => {
            let out = init(&a)?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

const FILES: [&str; 6] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "requestor.pem",
    "requestor-key.pem",
];

fn san(name: &str) -> anyhow::Result<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.contains(':') {
        return Ok(SanType::URI(
            name.try_into()
                .with_context(|| format!("`{name}` is not a valid URI"))?,
        ));
    }
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        bail!("`{name}` is not a DNS name, IP address or URI");
    }
    Ok(SanType::DnsName(name.try_into()?))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "Leaseline lab");
    d.push(DnType::CommonName, cn);
    d
}

/// Write the six files; return the text to print.
pub fn init(a: &InitArgs) -> anyhow::Result<String> {
    if a.days == 0 {
        bail!("--days must be at least 1");
    }
    let server_names = if a.server_names.is_empty() {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        a.server_names.clone()
    };
    let server_sans = server_names
        .iter()
        .map(|n| san(n).with_context(|| "--server-name".to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let requestor_san = san(&a.requestor_name).context("--requestor-name")?;

    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    if !a.force {
        let existing: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|f| a.dir.join(f).exists())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already holds {}; use --force to replace them (certificates signed by the old CA stop being trusted)",
                a.dir.display(),
                existing.join(", ")
            );
        }
    }

    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks that lag.
    let not_before = now - time::Duration::hours(1);
    let leaf_until = now + time::Duration::days(i64::from(a.days));
    let ca_until = now + time::Duration::days(i64::from(a.days.max(3650)));

    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn("Leaseline lab CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = ca_until;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |cn: &str, sans: Vec<SanType>, eku: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.subject_alt_names = sans;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        p.not_before = not_before;
        p.not_after = leaf_until;
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &issuer)?;
        anyhow::Ok((cert, key.serialize_pem()))
    };
    let (server, server_key) = leaf(
        &server_names[0],
        server_sans,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (requestor, requestor_key) = leaf(
        &a.requestor_name,
        vec![requestor_san],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    let dir = &a.dir;
    write(dir, "ca.pem", &ca_cert.pem(), false, a.force)?;
    write(dir, "ca-key.pem", &ca_key_pem, true, a.force)?;
    write(dir, "server.pem", &server.pem(), false, a.force)?;
    write(dir, "server-key.pem", &server_key, true, a.force)?;
    write(dir, "requestor.pem", &requestor.pem(), false, a.force)?;
    write(dir, "requestor-key.pem", &requestor_key, true, a.force)?;

    let id = CertIdentity::from_der(requestor.der());
    let p = |f: &str| dir.join(f).display().to_string();
    // The server resolves relative paths against its configuration file, which
    // may live anywhere: the snippet uses absolute ones.
    let abs_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let abs = |f: &str| toml_string(&abs_dir.join(f).display().to_string());
    let spki = id
        .spki_sha256
        .map(leaseline_server::tls::AllowEntry::SpkiSha256)
        .map(|e| e.to_string())
        .unwrap_or_default();
    let sha = leaseline_server::tls::AllowEntry::CertSha256(id.sha256).to_string();
    let name_flag = match server_names.first() {
        Some(n) if n != "localhost" && n != "127.0.0.1" => format!(" --server-name {n}"),
        _ => String::new(),
    };
    Ok(format!(
        r#"Wrote a lab PKI to {dir} (certificates valid {days} days; keys mode 0600):
  {ca}, {ca_key}   the lab CA (keep ca-key.pem offline)
  {srv}, {srv_key}   server certificate for {names}
  {req}, {req_key}   requestor certificate for {rname}

Server configuration (secure mode is the default for Active Leasequery;
relative paths would be relative to the configuration file):

[leasequery.tls]
cert = {abs_srv}
key = {abs_srv_key}
ca = {abs_ca}
# Requestors allowed in, by name (subject alternative name) or by hash:
allowed_requestors = [
    "san:{rname}",
    # "{sha}",   # this certificate exactly
    # "{spki}",   # this key, across renewals
]

Requestor flags (watch, bulk, mirror):
  --tls --ca {ca} --cert {req} --key {req_key}{name_flag}
"#,
        dir = dir.display(),
        days = a.days,
        ca = p("ca.pem"),
        ca_key = p("ca-key.pem"),
        srv = p("server.pem"),
        srv_key = p("server-key.pem"),
        req = p("requestor.pem"),
        req_key = p("requestor-key.pem"),
        names = server_names.join(", "),
        abs_srv = abs("server.pem"),
        abs_srv_key = abs("server-key.pem"),
        abs_ca = abs("ca.pem"),
        rname = a.requestor_name,
    ))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write(dir: &Path, name: &str, body: &str, secret: bool, force: bool) -> anyhow::Result<()> {
    let path = dir.join(name);
    let mut o = OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = o
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its mode on open: set it explicitly.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
    }
    f.write_all(body.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use leaseline_requestor::tls::{connect, TlsClient, TlsClientSettings, TlsError};
    use leaseline_server::tls::{accept_with_timeout, AllowEntry, RefusalKind, TlsSettings};
    use leaseline_wire::{DhcpOption, FrameDecoder, Message, MessageType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn args(dir: &Path) -> InitArgs {
        InitArgs {
            dir: dir.to_path_buf(),
            server_names: vec![],
            requestor_name: "requestor.leaseline.lab".into(),
            days: 30,
            force: false,
        }
    }

    #[test]
    fn writes_six_files_with_private_keys_0600_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let out = init(&args(&dir)).unwrap();
        for f in FILES {
            assert!(dir.join(f).exists(), "{f}");
            assert!(out.contains(&dir.join(f).display().to_string()), "{out}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["ca-key.pem", "server-key.pem", "requestor-key.pem"] {
                let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        assert!(out.contains("[leasequery.tls]"));
        assert!(out.contains("\"san:requestor.leaseline.lab\""));
        assert!(out.contains("--tls --ca"));
        let again = init(&args(&dir)).unwrap_err().to_string();
        assert!(again.contains("--force"), "{again}");
        let mut forced = args(&dir);
        forced.force = true;
        init(&forced).unwrap();
    }

    /// The printed server snippet is valid configuration: appended to the
    /// loopback example with Active Leasequery on, it parses, and the files
    /// it names load.
    #[test]
    fn printed_snippet_is_valid_configuration() {
        let tmp = tempfile::tempdir().unwrap();
        let out = init(&args(&tmp.path().join("certs"))).unwrap();
        let start = out.find("[leasequery.tls]").unwrap();
        let end = out[start..].find("\n]\n").unwrap() + start + 3;
        let snippet = &out[start..end];
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/loopback.toml");
        let base = std::fs::read_to_string(&example)
            .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
        // The loopback example already enables Active Leasequery; the snippet adds secure mode.
        assert!(
            base.contains("[leasequery.active]"),
            "the example enables active leasequery"
        );
        let text = format!("{base}\n{snippet}");
        let config = leaseline_server::Config::parse(&text, "/elsewhere/leaseline.toml")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let tls = config.leasequery.tls.expect("tls section");
        TlsSettings::load(&tls.cert, &tls.key, &tls.ca, &tls.allowed_requestors).unwrap();
    }

    #[test]
    fn bad_names_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(tmp.path());
        a.requestor_name = "not a name".into();
        assert!(init(&a).is_err());
        let mut a = args(tmp.path());
        a.server_names = vec!["bad_name!".into()];
        assert!(init(&a).is_err());
    }

    /// The printed snippet, loaded by the server and the requestor, gives a
    /// working secure connection; the printed hashes admit the requestor too.
    #[tokio::test]
    async fn generated_files_work_end_to_end() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let out = init(&args(dir)).unwrap();
        let entry = |prefix: &str| {
            out.split('"')
                .find(|s| s.starts_with(prefix))
                .unwrap()
                .to_string()
        };
        for allowed in [
            "san:requestor.leaseline.lab".to_string(),
            entry("sha256:"),
            entry("spki-sha256:"),
        ] {
            let settings = TlsSettings::load(
                &dir.join("server.pem"),
                &dir.join("server-key.pem"),
                &dir.join("ca.pem"),
                &[allowed.as_str()],
            )
            .unwrap();
            let peer = handshake(&settings, dir).await.unwrap();
            assert_eq!(peer.to_string(), allowed);
            assert!(matches!(
                peer.matched,
                AllowEntry::Dns(_) | AllowEntry::CertSha256(_) | AllowEntry::SpkiSha256(_)
            ));
        }
        // Someone else's certificate from the same lab CA is not on the list.
        let settings = TlsSettings::load(
            &dir.join("server.pem"),
            &dir.join("server-key.pem"),
            &dir.join("ca.pem"),
            &["san:other.leaseline.lab"],
        )
        .unwrap();
        let r = handshake(&settings, dir).await.unwrap_err();
        assert_eq!(r, RefusalKind::NotAllowed);
    }

    /// A minimal secure-mode server: read DHCPTLS with a frame decoder,
    /// answer it, check nothing else was buffered, accept; the requestor
    /// connects with the generated files and reads one framed message.
    async fn handshake(
        settings: &TlsSettings,
        dir: &Path,
    ) -> Result<leaseline_server::tls::PeerIdentity, RefusalKind> {
        let acceptor = settings.acceptor().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut dec = FrameDecoder::new(65535);
            let mut buf = [0u8; 2048];
            let first = loop {
                let n = tcp.read(&mut buf).await.unwrap();
                dec.extend(&buf[..n]);
                if let Some(f) = dec.next_frame().unwrap() {
                    break Message::decode(f).unwrap();
                }
            };
            assert_eq!(first.message_type(), Some(MessageType::Tls));
            assert_eq!(dec.buffered(), 0);
            let mut answer = Message {
                op: 2,
                ..Message::default()
            };
            answer
                .options
                .push(DhcpOption::MessageType(MessageType::Tls));
            let mut out = Vec::new();
            leaseline_wire::encode_frame(&answer.to_bytes().unwrap(), &mut out).unwrap();
            tcp.write_all(&out).await.unwrap();
            match accept_with_timeout(&acceptor, tcp, Duration::from_secs(5)).await {
                Ok((mut tls, peer)) => {
                    tls.write_all(&[0, 1, 42]).await.unwrap();
                    tls.shutdown().await.unwrap();
                    Ok(peer)
                }
                Err(r) => Err(r.kind),
            }
        });
        let client = TlsClient::new(&TlsClientSettings {
            ca: dir.join("ca.pem"),
            cert: dir.join("requestor.pem"),
            key: dir.join("requestor-key.pem"),
            server_name: None,
        })
        .unwrap()
        .with_timeout(Duration::from_secs(5));
        let client = Arc::new(client);
        match connect(addr, &client).await {
            Ok(mut tls) => {
                let mut got = Vec::new();
                let _ = tls.read_to_end(&mut got).await;
                let result = server.await.unwrap();
                if result.is_ok() {
                    assert_eq!(got, [0, 1, 42]);
                } else {
                    assert!(got.is_empty());
                }
                result
            }
            Err(TlsError::Handshake { reason, .. }) => panic!("{reason}"),
            Err(e) => panic!("{e}"),
        }
    }
}
