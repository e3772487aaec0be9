//! The DNS stub inside the sandbox: every name gets a distinct fake loopback address, and
//! no query ever leaves (there is nowhere to send it). A connection to a fake address is
//! mapped back to its name by the listeners of [`crate::inside`] and goes through the
//! proxy, which decides by the name and logs a denial with it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

/// The first fake address; the range stays clear of 127.0.0.1 and 127.0.0.53.
const FIRST: u32 = u32::from_be_bytes([127, 100, 0, 1]);
const LAST: u32 = u32::from_be_bytes([127, 127, 255, 254]);

#[derive(Default)]
struct Table {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
    next: u32,
}

/// Names and their fake addresses, shared by the stub and the listeners.
#[derive(Clone, Default)]
pub struct FakeNames {
    inner: Arc<Mutex<Table>>,
}

impl FakeNames {
    /// The fake address of `name`, given out on first use.
    pub fn address_of(&self, name: &str) -> Option<Ipv4Addr> {
        let name = kennel_policy::normalize_host(name);
        if name == "localhost" || name.ends_with(".localhost") {
            return Some(Ipv4Addr::LOCALHOST);
        }
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = t.by_name.get(&name) {
            return Some(*a);
        }
        let n = FIRST + t.next;
        if n > LAST {
            return None;
        }
        t.next += 1;
        let addr = Ipv4Addr::from(n);
        t.by_name.insert(name.clone(), addr);
        t.by_addr.insert(addr, name);
        Some(addr)
    }

    /// The name a fake address was given to.
    pub fn name_of(&self, addr: Ipv4Addr) -> Option<String> {
        let t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.by_addr.get(&addr).cloned()
    }
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// Answers one query: an `A` record with the fake address for `A` questions, an empty
/// answer for any other type (so that clients fall back to IPv4), `FORMERR` for what it
/// cannot read. `None` when the packet is not worth an answer.
pub fn answer(query: &[u8], names: &FakeNames) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let id = &query[..2];
    let opcode = query[2] & 0x78;
    let rd = query[2] & 0x01;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(id);
    let header = |reply: &mut Vec<u8>, rcode: u8, qd: u16, an: u16| {
        reply.push(0x80 | opcode | 0x04 | rd); // response, authoritative
        reply.push(0x80 | rcode); // recursion available
        reply.extend_from_slice(&qd.to_be_bytes());
        reply.extend_from_slice(&an.to_be_bytes());
        reply.extend_from_slice(&[0, 0, 0, 0]);
    };
    let parsed = (opcode == 0 && qdcount == 1)
        .then(|| question(&query[12..]))
        .flatten();
    let Some((name, qtype, qclass, qlen)) = parsed else {
        header(&mut reply, 1, 0, 0);
        return Some(reply);
    };
    let addr = (qtype == TYPE_A && qclass == CLASS_IN)
        .then(|| names.address_of(&name))
        .flatten();
    header(&mut reply, 0, 1, u16::from(addr.is_some()));
    reply.extend_from_slice(&query[12..12 + qlen]);
    if let Some(a) = addr {
        reply.extend_from_slice(&[0xc0, 12]); // the name, as a pointer to the question
        reply.extend_from_slice(&TYPE_A.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&5u32.to_be_bytes()); // TTL: short, the mapping is per run
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&a.octets());
    }
    Some(reply)
}

/// The question's name, type, class and length in bytes.
fn question(buf: &[u8]) -> Option<(String, u16, u16, usize)> {
    let mut labels = Vec::new();
    let mut i = 0;
    loop {
        let len = *buf.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression is not used in questions
        }
        let label = buf.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        i += len;
    }
    let rest = buf.get(i..i + 4)?;
    let qtype = u16::from_be_bytes([rest[0], rest[1]]);
    let qclass = u16::from_be_bytes([rest[2], rest[3]]);
    Some((labels.join("."), qtype, qclass, i + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn every_name_gets_its_own_fake_address() {
        let names = FakeNames::default();
        let a = answer(&query("api.example.org", 1), &names).unwrap();
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(&a[a.len() - 4..], &[127, 100, 0, 1]);
        let b = answer(&query("other.example.org", 1), &names).unwrap();
        assert_eq!(&b[b.len() - 4..], &[127, 100, 0, 2]);
        let again = answer(&query("API.example.org", 1), &names).unwrap();
        assert_eq!(&again[again.len() - 4..], &[127, 100, 0, 1]);
        assert_eq!(
            names.name_of(Ipv4Addr::new(127, 100, 0, 2)).as_deref(),
            Some("other.example.org")
        );
        let aaaa = answer(&query("api.example.org", 28), &names).unwrap();
        assert_eq!(&aaaa[6..8], &[0, 0], "no answer for AAAA");
        assert!(answer(&[1, 2, 3], &names).is_none());
    }
}
