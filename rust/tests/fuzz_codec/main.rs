//! Structure-aware mutation fuzzer for the payload decoder (a stable-toolchain stand-in for cargo-fuzz:
//! no coverage feedback, but inputs come from a msgpack grammar and targeted mutations).
//!
//! Each input number `i` of a run is built from its own stream (`Rng::for_input(seed, i)`), so any one can
//! be replayed alone. Environment: `WAKAQ_FUZZ_ITERATIONS` (default 20000, the CI run; `make fuzz` asks for
//! 1000000), `WAKAQ_FUZZ_SEED` (decimal or 0x-hex), `WAKAQ_FUZZ_INPUT` (replay just that input, with its hex).

mod alloc;
mod check;
mod grammar;
mod json_gen;
mod mutate;
mod rng;

use std::fmt::Write as _;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use _wakaq::codec::MAX_DEPTH;
use pyo3::prelude::*;

use check::{check, Expect, Stats};
use grammar::{Gen, Sample};
use rng::Rng;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const DEFAULT_ITERATIONS: u64 = 20_000;
const DEFAULT_SEED: u64 = 0x5eed_da7a_c0de_c0de;
/// Truncation sweeps (every prefix of a valid input) are run for inputs up to this size.
const SWEEP_MAX_LEN: usize = 512;

/// The input being decoded and the run's seed, for the crash report of a signal handler.
static CURRENT_INPUT: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);

fn main() {
    let seed = env_u64("WAKAQ_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let iterations = env_u64("WAKAQ_FUZZ_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS);
    let only = env_u64("WAKAQ_FUZZ_INPUT");
    SEED.store(seed, Relaxed);
    report_fatal_signals();
    Python::attach(|py| {
        alloc::install_python_hooks(py);
        warm_up(py);
        let started = Instant::now();
        let mut stats = Stats::default();
        if only.is_none() {
            regressions(py, &mut stats);
        }
        let range = only.map_or(0..iterations, |i| i..i + 1);
        for index in range {
            CURRENT_INPUT.store(index, Relaxed);
            if let Err((what, data)) = one_input(py, seed, index, &mut stats, only.is_some()) {
                eprintln!("\nfuzz: FAILED on input {index} of seed {seed:#x}: {what}");
                eprintln!("input ({} bytes): {}", data.len(), hex(&data));
                eprintln!("replay: WAKAQ_FUZZ_SEED={seed:#x} WAKAQ_FUZZ_INPUT={index} make fuzz");
                exit(1);
            }
        }
        print_stats(seed, &stats, started.elapsed().as_secs_f64());
    });
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

/// Makes `wakaq.exceptions` importable (alone: the package's `__init__` wants the built extension), so
/// the codec raises the real `PayloadError`.
fn load_exceptions(py: Python<'_>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python/wakaq");
    let code = format!(
        "import sys, types\npackage = types.ModuleType('wakaq')\npackage.__path__ = [{dir:?}]\n\
         sys.modules['wakaq'] = package\nimport wakaq.exceptions\n"
    );
    let code = std::ffi::CString::new(code).expect("no NUL in a path");
    py.run(&code, None, None).expect("import wakaq.exceptions");
}

/// Loads what the first decodes would otherwise load (decimal, json, base64, datetime), so that one-off
/// imports do not count against the first inputs' allocation bounds.
fn warm_up(py: Python<'_>) {
    load_exceptions(py);
    let json = br#"{"name": "t", "args": [{"__class__": "bytes", "value": "AA=="},
        {"__class__": "Decimal", "value": "1"}, {"__class__": "datetime", "value": "2024-01-01T00:00:00+01:00"},
        {"__class__": "date", "year": 2024, "month": 1, "day": 1}, {"__class__": "timedelta", "value": 1}]}"#;
    _wakaq::codec::decode_task_bytes(py, json).expect("warm-up JSON payload");
    let msgpack = [
        0x94, 0xd4, 0x03, b'1', 0xd6, 0xff, 0, 0, 0, 0, 0xd6, 0x01, 7, 0xe8, 1, 1, 0xc7, 1, 4, b'1',
    ];
    _wakaq::codec::unpack(py, &msgpack).expect("warm-up msgpack value");
    let bad: [&[u8]; 5] = [b"\xc1", b"{", b"{\0}\0", b"\x81\x91\x01\x02", b"\xd4\x09\x00"];
    for bad in bad {
        let _ = _wakaq::codec::decode_task_bytes(py, bad);
        let _ = _wakaq::codec::unpack(py, bad);
    }
}

/// Inputs that once failed, checked first on every run.
fn regressions(py: Python<'_>, stats: &mut Stats) {
    // 128 array16 headers each declaring 65535 items, then 100 KB: reserved min(declared, bytes left)
    // slots per level, about depth * len * 8 bytes.
    let mut huge_arrays = [0xdc, 0xff, 0xff].repeat(MAX_DEPTH);
    huge_arrays.resize(huge_arrays.len() + 100_000, 0xc0);
    for data in [huge_arrays] {
        if let Err(what) = check(py, &data, Expect::Anything, stats) {
            eprintln!("\nfuzz: FAILED on a regression input: {what}\ninput: {}", hex(&data));
            exit(1);
        }
    }
}

/// Builds input `index` and checks it (with, now and then, every truncation of it).
fn one_input(py: Python<'_>, seed: u64, index: u64, stats: &mut Stats, show: bool) -> Result<(), (String, Vec<u8>)> {
    let mut rng = Rng::for_input(seed, index);
    let (data, expect) = make_input(&mut rng);
    if show {
        println!("input {index} ({} bytes): {}", data.len(), hex(&data));
    }
    stats.generated += 1;
    check(py, &data, expect, stats).map_err(|what| (what, data.clone()))?;
    let valid = matches!(expect, Expect::Value { .. } | Expect::Task { .. });
    if valid && data.len() <= SWEEP_MAX_LEN && rng.one_in(64) {
        for cut in 0..data.len() {
            check(py, &data[..cut], Expect::Prefix, stats).map_err(|what| (what, data[..cut].to_vec()))?;
        }
    }
    Ok(())
}

/// A valid value, task or JSON payload (45%), a mutation of one (50%), or random bytes (5%).
fn make_input(rng: &mut Rng) -> (Vec<u8>, Expect) {
    let roll = rng.below(100);
    if roll < 5 {
        return (mutate::garbage(rng), Expect::Anything);
    }
    let (sample, expect) = valid_input(rng);
    if roll < 50 {
        return (sample.bytes, expect);
    }
    let (other, _) = valid_input(rng);
    let mut data = sample.bytes;
    mutate::mutate(rng, &mut data, &other.bytes);
    (data, Expect::Anything)
}

fn valid_input(rng: &mut Rng) -> (Sample, Expect) {
    match rng.below(10) {
        0..=4 => {
            let mut gen = Gen::new(rng);
            gen.value(0);
            let sample = gen.finish();
            let canonical = sample.canonical;
            (sample, Expect::Value { canonical })
        }
        5..=8 => {
            let mut gen = Gen::new(rng);
            gen.task();
            let sample = gen.finish();
            let canonical = sample.canonical;
            (sample, Expect::Task { canonical })
        }
        _ => {
            let bytes = json_gen::task(rng);
            (
                Sample {
                    bytes,
                    canonical: false,
                },
                Expect::Json,
            )
        }
    }
}

fn print_stats(seed: u64, stats: &Stats, seconds: f64) {
    println!(
        "fuzz: seed {seed:#x}: {} inputs ({} generated, the rest truncations of them) in {seconds:.1} s ({:.0}/s), \
         0 crashes",
        stats.inputs,
        stats.generated,
        stats.inputs as f64 / seconds
    );
    println!(
        "  checked: {} canonical round trips, {} re-encode fixed points",
        stats.round_trips, stats.fixed_points
    );
    for entry in ["unpackb", "decode_task"] {
        let kinds: Vec<String> = stats
            .outcomes
            .iter()
            .filter(|((e, _), _)| *e == entry)
            .map(|((_, kind), n)| format!("{kind} {n}"))
            .collect();
        println!("  {entry}: {}", kinds.join(", "));
    }
    let names = [
        "Rust peak",
        "Rust largest block",
        "Python requested",
        "Python largest block",
    ];
    let bounds = [
        (check::RUST_PER_BYTE, check::RUST_CONSTANT),
        (check::RUST_PER_BYTE, check::RUST_CONSTANT),
        (check::PY_PER_BYTE, check::PY_CONSTANT),
        (check::PY_PER_BYTE, check::PY_CONSTANT),
    ];
    for ((name, worst), (per_byte, constant)) in names.iter().zip(&stats.worst).zip(bounds) {
        let shown = &worst.input[..worst.input.len().min(24)];
        println!(
            "  worst {name}: {} B for a {}-byte input {}.. (bound {per_byte} * len + {constant})",
            worst.bytes,
            worst.input.len(),
            hex(shown)
        );
    }
}

pub fn hex(data: &[u8]) -> String {
    const SHOWN: usize = 4096;
    let mut text = String::with_capacity(2 * data.len().min(SHOWN));
    for b in data.iter().take(SHOWN) {
        let _ = write!(text, "{b:02x}");
    }
    if data.len() > SHOWN {
        let _ = write!(text, "... ({} more bytes)", data.len() - SHOWN);
    }
    text
}

/// On SIGABRT, SIGSEGV or SIGBUS (a stack overflow, an abort in C), prints which input was running, then
/// lets the signal kill the process as it would have.
fn report_fatal_signals() {
    for signal in [libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; `on_fatal_signal` only calls
        // async-signal-safe functions (write) and reads atomics.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as usize;
            action.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigaction(signal, &raw const action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_fatal_signal(_signal: libc::c_int) {
    write_stderr(b"\nfuzz: CRASHED (fatal signal) on input ");
    write_number(CURRENT_INPUT.load(Relaxed));
    write_stderr(b" of seed ");
    write_number(SEED.load(Relaxed));
    write_stderr(b"; replay with WAKAQ_FUZZ_SEED=<seed> WAKAQ_FUZZ_INPUT=<input> make fuzz\n");
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; the buffer is valid for its length.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Decimal digits without allocating (signal handlers must not).
fn write_number(mut n: u64) {
    let mut buf = [0_u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[at..]);
}
