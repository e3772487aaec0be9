//! Seeded random mutations of the bytes the sandbox controls, fed to the proxy's and the
//! stub's parsers (issue 17, item 12): no panic, and output bounded by the input. cargo-fuzz
//! needs a nightly compiler; this runs with every `cargo test`, the same cases each time
//! (`KENNEL_MUTATION_SEED` and `KENNEL_MUTATION_CASES` try others).

use std::time::{Duration, Instant};

use crate::dns::{self, FakeNames};
use crate::http::{self, Request};
use crate::sni::{self, Hello};

/// xorshift64*: small, deterministic, enough to spread mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        // Often a byte that means something to one of the parsers.
        const SPECIAL: &[u8] = b"\r\n\0 :/@[]\x16\x03\x01\xff\x00\xc0\x3f\x40";
        if self.below(3) == 0 {
            SPECIAL[self.below(SPECIAL.len())]
        } else {
            self.next() as u8
        }
    }
}

/// One to four mutations of `input`: bytes flipped, inserted, removed, a run repeated, a
/// cut, a length field set to an extreme.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if at < out.len() => out[at] = rng.byte(),
            1 => out.insert(at, rng.byte()),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let len = rng.below(64).min(out.len() - at);
                let run = out[at..at + len].to_vec();
                for _ in 0..rng.below(64) {
                    out.splice(at..at, run.iter().copied());
                }
            }
            4 => out.truncate(at),
            5 if at + 1 < out.len() => {
                let v = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
                out[at] = v;
                out[at + 1] = v;
            }
            _ => {
                let n = rng.below(16);
                for _ in 0..n {
                    out.insert(at, rng.byte());
                }
            }
        }
    }
    out
}

fn cases() -> (u64, usize) {
    let seed = std::env::var("KENNEL_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b65_6e6e_656c);
    let n = std::env::var("KENNEL_MUTATION_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    (seed, n)
}

/// Runs `check` on mutations of every seed; a panic names the input that caused it.
fn run(seeds: &[Vec<u8>], check: impl Fn(&[u8])) {
    let (seed, n) = cases();
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    for case in 0..n {
        let base = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, base);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        assert!(
            outcome.is_ok(),
            "case {case} of seed {seed}: input of {} bytes starting {:?}",
            input.len(),
            &input[..input.len().min(200)]
        );
    }
    // Linear parsers: thousands of small inputs take milliseconds.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn http_heads_never_panic_and_give_back_no_more_than_they_got() {
    let seeds: Vec<Vec<u8>> = [
        &b"CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org\r\n\r\n"[..],
        b"CONNECT [::1]:22 HTTP/1.1\r\n\r\n",
        b"GET http://user@example.org:8080/a?b HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n",
        b"POST http://[2001:db8::1]/ HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    run(&seeds, |input| {
        if let Ok(request) = http::parse(input) {
            match request {
                Request::Connect { host, port } => {
                    assert!(host.len() < input.len() && port != 0);
                }
                Request::Plain { host, port, head } => {
                    assert!(host.len() < input.len() && port != 0);
                    // The rewritten head: the original's lines, a Host line, one close.
                    assert!(head.len() <= 2 * input.len() + 64);
                    assert!(head.ends_with(b"Connection: close\r\n\r\n"));
                    let text = String::from_utf8_lossy(&head);
                    let body = &text[..text.len() - 4];
                    assert!(
                        body.split("\r\n").all(|l| !l.contains(['\r', '\n'])),
                        "{text:?}"
                    );
                }
            }
        }
        let mut reader = input;
        if let Ok((head, rest)) = http::read_head(&mut reader) {
            assert_eq!(head.len() + rest.len() + reader.len(), input.len());
            assert!(head.ends_with(b"\r\n\r\n"));
        }
        let _ = http::status_code(input);
    });
}

#[test]
fn tls_hellos_never_panic_and_name_only_what_they_hold() {
    let seeds = vec![
        sni::client_hello_for("api.example.org"),
        sni::client_hello_for(""),
        sni::client_hello_for(&"x".repeat(300)),
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
    ];
    run(&seeds, |input| match sni::parse(input) {
        Hello::Tls(Some(name)) => assert!(name.len() < input.len()),
        Hello::Tls(None) | Hello::NotTls | Hello::Incomplete | Hello::Malformed => {}
    });
}

#[test]
fn dns_questions_never_panic_and_answers_stay_small() {
    fn query(name: &str, qtype: u16, qd: u8) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, qd, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }
    let seeds = vec![
        query("api.example.org", 1, 1),
        query("example.org", 28, 1),
        query("localhost", 1, 1),
        query(&format!("{}.test", "a".repeat(63)), 1, 1),
        query("two.questions", 1, 2),
    ];
    let names = FakeNames::default();
    run(&seeds, |input| {
        if let Some(reply) = dns::answer(input, &names) {
            // The header, the question echoed, at most one A record.
            assert!(reply.len() <= input.len() + 16, "{reply:?}");
            assert_eq!(reply.get(..2), input.get(..2));
        }
    });
}
