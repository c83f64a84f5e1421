//! A test PKI made with rcgen: a CA and leaf certificates it signs, in
//! memory (PEM and DER). Used by the TLS tests of the server, the requestor
//! and the binary.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
pub use rcgen::{ExtendedKeyUsagePurpose, SanType};

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate signed by a [`Ca`], with its key.
pub struct Leaf {
    pub pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// Validity of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// rcgen's default window (1975 to 4096).
    Current,
    /// 2001 to 2002.
    Expired,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "Leaseline test");
    d.push(DnType::CommonName, cn);
    d
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = p.self_signed(&key).expect("self-sign the CA");
        Ca {
            issuer: Issuer::new(p, key),
            pem: cert.pem(),
        }
    }

    /// A leaf certificate named `cn` with these subject alternative names
    /// and extended key usage.
    pub fn leaf(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        eku: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Leaf {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.subject_alt_names = sans;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        p.use_authority_key_identifier_extension = true;
        if validity == Validity::Expired {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign the leaf");
        Leaf {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server_leaf(&self) -> Leaf {
        self.leaf(
            "localhost",
            vec![dns("localhost"), SanType::IpAddress([127, 0, 0, 1].into())],
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        )
    }

    /// A requestor (client) certificate with DNS name `name`.
    pub fn requestor_leaf(&self, name: &str) -> Leaf {
        self.leaf(
            name,
            vec![dns(name)],
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::Current,
        )
    }
}

/// A DNS subject alternative name.
pub fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().expect("a DNS name"))
}
