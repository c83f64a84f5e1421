//! How a client is identified: by client-identifier (option 61) when it
//! sends one, else by hardware address (RFC 2131 §4.2).

use leaseline_proto::Binding;
use leaseline_wire::{DhcpOption, Message};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    ClientId(Box<[u8]>),
    Hw { htype: u8, addr: Box<[u8]> },
}

impl ClientKey {
    pub fn of_message(msg: &Message) -> ClientKey {
        match client_id(msg) {
            Some(id) => ClientKey::ClientId(id.into()),
            None => ClientKey::Hw {
                htype: msg.htype,
                addr: msg.hw_addr().into(),
            },
        }
    }

    pub fn of_binding(b: &Binding) -> ClientKey {
        match &b.client_id {
            Some(id) => ClientKey::ClientId(id.as_slice().into()),
            None => ClientKey::Hw {
                htype: b.htype,
                addr: b.chaddr.as_slice().into(),
            },
        }
    }

    /// True when the binding belongs to this client.
    pub fn owns(&self, b: &Binding) -> bool {
        match self {
            ClientKey::ClientId(id) => b.client_id.as_deref() == Some(&id[..]),
            ClientKey::Hw { htype, addr } => {
                b.client_id.is_none() && b.htype == *htype && b.chaddr.as_slice() == &addr[..]
            }
        }
    }
}

pub fn client_id(msg: &Message) -> Option<&[u8]> {
    msg.options.iter().find_map(|o| match o {
        DhcpOption::ClientId(id) => Some(id.as_slice()),
        _ => None,
    })
}

/// Everything a request says about who sent it.
#[derive(Debug, Clone)]
pub struct Ident {
    pub key: ClientKey,
    pub htype: u8,
    pub mac: Box<[u8]>,
    pub client_id: Option<Box<[u8]>>,
}

impl Ident {
    pub fn of_message(msg: &Message) -> Ident {
        Ident {
            key: ClientKey::of_message(msg),
            htype: msg.htype,
            mac: msg.hw_addr().into(),
            client_id: client_id(msg).map(Into::into),
        }
    }
}

/// Who a reservation is for: a client-id, a MAC (Ethernet), or either.
#[derive(Debug, Clone)]
pub struct Owner {
    pub client_id: Option<Box<[u8]>>,
    pub mac: Option<Box<[u8]>>,
}

impl Owner {
    pub fn matches(&self, who: &Ident) -> bool {
        let by_id = matches!((&self.client_id, &who.client_id), (Some(a), Some(b)) if a == b);
        let by_mac = who.htype == 1 && self.mac.as_deref() == Some(&who.mac[..]);
        by_id || by_mac
    }
}
