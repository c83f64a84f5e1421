//! Typed DHCP options. Options we do not know are kept as raw bytes and
//! re-emitted unchanged.

use std::net::Ipv4Addr;

/// Option codes used by Leaseline.
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS_ID: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
    pub const ASSOCIATED_IP: u8 = 92;
    pub const STATUS_CODE: u8 = 151;
    pub const BASE_TIME: u8 = 152;
    pub const START_TIME_OF_STATE: u8 = 153;
    pub const QUERY_START_TIME: u8 = 154;
    pub const QUERY_END_TIME: u8 = 155;
    pub const DHCP_STATE: u8 = 156;
    pub const DATA_SOURCE: u8 = 157;
    pub const VSS: u8 = 221;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53), RFC 2132, 4388, 6926, 7724.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
    ForceRenew = 9,
    LeaseQuery = 10,
    LeaseUnassigned = 11,
    LeaseUnknown = 12,
    LeaseActive = 13,
    BulkLeaseQuery = 14,
    LeaseQueryDone = 15,
    ActiveLeaseQuery = 16,
    LeaseQueryStatus = 17,
    Tls = 18,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            9 => ForceRenew,
            10 => LeaseQuery,
            11 => LeaseUnassigned,
            12 => LeaseUnknown,
            13 => LeaseActive,
            14 => BulkLeaseQuery,
            15 => LeaseQueryDone,
            16 => ActiveLeaseQuery,
            17 => LeaseQueryStatus,
            18 => Tls,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Discover => "DHCPDISCOVER",
            Offer => "DHCPOFFER",
            Request => "DHCPREQUEST",
            Decline => "DHCPDECLINE",
            Ack => "DHCPACK",
            Nak => "DHCPNAK",
            Release => "DHCPRELEASE",
            Inform => "DHCPINFORM",
            ForceRenew => "DHCPFORCERENEW",
            LeaseQuery => "DHCPLEASEQUERY",
            LeaseUnassigned => "DHCPLEASEUNASSIGNED",
            LeaseUnknown => "DHCPLEASEUNKNOWN",
            LeaseActive => "DHCPLEASEACTIVE",
            BulkLeaseQuery => "DHCPBULKLEASEQUERY",
            LeaseQueryDone => "DHCPLEASEQUERYDONE",
            ActiveLeaseQuery => "DHCPACTIVELEASEQUERY",
            LeaseQueryStatus => "DHCPLEASEQUERYSTATUS",
            Tls => "DHCPTLS",
        }
    }
}

/// Status codes of option 151 (RFC 6926 §6.2.2, RFC 7724 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Success,
    UnspecFail,
    QueryTerminated,
    MalformedQuery,
    NotAllowed,
    DataMissing,
    ConnectionActive,
    CatchUpComplete,
    TlsConnectionRefused,
    /// A code this implementation does not know; kept so it round-trips.
    Other(u8),
}

impl StatusCode {
    pub fn from_u8(v: u8) -> Self {
        use StatusCode::*;
        match v {
            0 => Success,
            1 => UnspecFail,
            2 => QueryTerminated,
            3 => MalformedQuery,
            4 => NotAllowed,
            5 => DataMissing,
            6 => ConnectionActive,
            7 => CatchUpComplete,
            8 => TlsConnectionRefused,
            n => Other(n),
        }
    }
    pub fn as_u8(self) -> u8 {
        use StatusCode::*;
        match self {
            Success => 0,
            UnspecFail => 1,
            QueryTerminated => 2,
            MalformedQuery => 3,
            NotAllowed => 4,
            DataMissing => 5,
            ConnectionActive => 6,
            CatchUpComplete => 7,
            TlsConnectionRefused => 8,
            Other(n) => n,
        }
    }
    pub fn name(self) -> &'static str {
        use StatusCode::*;
        match self {
            Success => "Success",
            UnspecFail => "UnspecFail",
            QueryTerminated => "QueryTerminated",
            MalformedQuery => "MalformedQuery",
            NotAllowed => "NotAllowed",
            DataMissing => "DataMissing",
            ConnectionActive => "ConnectionActive",
            CatchUpComplete => "CatchUpComplete",
            TlsConnectionRefused => "TLSConnectionRefused",
            Other(_) => "Unknown",
        }
    }
}

/// One sub-option of option 82 (RFC 3046). Circuit-id (1), remote-id (2) and
/// relay-id (12, RFC 6925) are what we index; every sub-option, known or not,
/// is kept in wire order and re-emitted unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubOption {
    pub code: u8,
    pub data: Vec<u8>,
}

/// Relay agent information (option 82).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RelayAgentInfo {
    pub sub_options: Vec<SubOption>,
}

impl RelayAgentInfo {
    pub const CIRCUIT_ID: u8 = 1;
    pub const REMOTE_ID: u8 = 2;
    pub const RELAY_ID: u8 = 12;

    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.sub_options
            .iter()
            .find(|s| s.code == code)
            .map(|s| s.data.as_slice())
    }
    pub fn circuit_id(&self) -> Option<&[u8]> {
        self.get(Self::CIRCUIT_ID)
    }
    pub fn remote_id(&self) -> Option<&[u8]> {
        self.get(Self::REMOTE_ID)
    }
    pub fn relay_id(&self) -> Option<&[u8]> {
        self.get(Self::RELAY_ID)
    }
}

/// A decoded option. Variants hold already-validated values; anything we do
/// not type is `Unknown` and re-encodes byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DhcpOption {
    SubnetMask(Ipv4Addr),
    Router(Vec<Ipv4Addr>),
    DnsServers(Vec<Ipv4Addr>),
    Hostname(Vec<u8>),
    DomainName(Vec<u8>),
    RequestedIp(Ipv4Addr),
    LeaseTime(u32),
    MessageType(MessageType),
    ServerId(Ipv4Addr),
    ParameterRequestList(Vec<u8>),
    RenewalTime(u32),
    RebindingTime(u32),
    VendorClassId(Vec<u8>),
    ClientId(Vec<u8>),
    RelayAgentInfo(RelayAgentInfo),
    /// Option 91: seconds since the client's last transaction.
    ClientLastTransactionTime(u32),
    /// Option 92: n >= 1 addresses.
    AssociatedIp(Vec<Ipv4Addr>),
    /// Option 151: code plus optional UTF-8 text.
    StatusCode(StatusCode, String),
    BaseTime(u32),
    StartTimeOfState(u32),
    QueryStartTime(u32),
    QueryEndTime(u32),
    /// Option 156: dhcp-state value (1..=8 defined by RFC 6926 §6.2.8).
    DhcpState(u8),
    DataSource(u8),
    /// Option 221 (RFC 6607), kept raw.
    Vss(Vec<u8>),
    Unknown {
        code: u8,
        data: Vec<u8>,
    },
}

impl DhcpOption {
    pub fn code(&self) -> u8 {
        use DhcpOption::*;
        match self {
            SubnetMask(_) => code::SUBNET_MASK,
            Router(_) => code::ROUTER,
            DnsServers(_) => code::DNS_SERVERS,
            Hostname(_) => code::HOSTNAME,
            DomainName(_) => code::DOMAIN_NAME,
            RequestedIp(_) => code::REQUESTED_IP,
            LeaseTime(_) => code::LEASE_TIME,
            MessageType(_) => code::MESSAGE_TYPE,
            ServerId(_) => code::SERVER_ID,
            ParameterRequestList(_) => code::PARAMETER_REQUEST_LIST,
            RenewalTime(_) => code::RENEWAL_TIME,
            RebindingTime(_) => code::REBINDING_TIME,
            VendorClassId(_) => code::VENDOR_CLASS_ID,
            ClientId(_) => code::CLIENT_ID,
            RelayAgentInfo(_) => code::RELAY_AGENT_INFO,
            ClientLastTransactionTime(_) => code::CLIENT_LAST_TRANSACTION_TIME,
            AssociatedIp(_) => code::ASSOCIATED_IP,
            StatusCode(..) => code::STATUS_CODE,
            BaseTime(_) => code::BASE_TIME,
            StartTimeOfState(_) => code::START_TIME_OF_STATE,
            QueryStartTime(_) => code::QUERY_START_TIME,
            QueryEndTime(_) => code::QUERY_END_TIME,
            DhcpState(_) => code::DHCP_STATE,
            DataSource(_) => code::DATA_SOURCE,
            Vss(_) => code::VSS,
            Unknown { code, .. } => *code,
        }
    }
}
