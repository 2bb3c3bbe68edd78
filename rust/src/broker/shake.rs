//! A script carries only the library definitions it uses. Redis runs a script's whole text on every call, so each
//! `local function` of lib.lua is a closure built per call whether the script calls it or not: with every helper
//! (lib.lua 16 KB, some 30 definitions) that was about 2 us of Redis CPU per call, a third of an empty claim.
//!
//! A library file is cut into top-level units: a `local function NAME`, a `local NAME = ...`, a forward
//! declaration `local NAME`, or an assignment `NAME = function` to one, each up to the next. A unit is kept when a
//! kept text names what it defines (identifiers outside comments; a name that only looks used keeps a unit
//! harmlessly), starting from the script's own text. Kept units stay in file order, so every local is defined
//! before the code after it uses it. Comment lines between units go with the unit before them; the catalogue at
//! the top of lib.lua (no unit yet) is left out.

use std::collections::BTreeSet;

struct Unit<'a> {
    provides: Vec<&'a str>,
    lines: Vec<&'a str>,
}

/// The name a top-level line defines, if it starts a unit.
fn defines(line: &str) -> Option<&str> {
    let name = if let Some(rest) = line.strip_prefix("local function ") {
        rest
    } else if let Some(rest) = line.strip_prefix("local ") {
        rest
    } else if line.contains(" = function") {
        line
    } else {
        return None;
    };
    let end = name
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}

fn units(library: &str) -> Vec<Unit<'_>> {
    let mut out: Vec<Unit<'_>> = Vec::new();
    for line in library.lines() {
        match defines(line) {
            Some(name) => out.push(Unit {
                provides: vec![name],
                lines: vec![line],
            }),
            None => {
                if let Some(unit) = out.last_mut() {
                    unit.lines.push(line);
                }
            }
        }
    }
    out
}

/// The identifiers of Lua code, comments left out.
fn identifiers<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
    let mut found = BTreeSet::new();
    for line in lines {
        let code = line.find("--").map_or(line, |at| &line[..at]);
        found.extend(
            code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')),
        );
    }
    found
}

/// `script` preceded by the units of `libraries` (in order) that it uses, directly or through other units.
pub fn assemble(libraries: &[&str], script: &str) -> String {
    let all: Vec<Unit<'_>> = libraries.iter().flat_map(|lib| units(lib)).collect();
    let mut needed = identifiers(script.lines());
    let mut kept = vec![false; all.len()];
    loop {
        let mut grew = false;
        for (unit, keep) in all.iter().zip(kept.iter_mut()) {
            if !*keep && unit.provides.iter().any(|n| needed.contains(n)) {
                *keep = true;
                grew = true;
                needed.extend(identifiers(unit.lines.iter().copied()));
            }
        }
        if !grew {
            break;
        }
    }
    let mut text = String::new();
    for (unit, _) in all.iter().zip(&kept).filter(|(_, keep)| **keep) {
        for line in &unit.lines {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(script);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "-- catalogue: ring settle\n\
        local function ring(bell)\n  return bell\nend\n\
        -- about be\n\
        local function be(n)\n  return n\nend\n\
        local function mp_uint(n) return be(n) end\n\
        local FINAL = {done = true}\n\
        local later\n\
        local function settle(s)\n  return FINAL[s] and later(s) -- not ring\nend\n";
    const WF: &str = "local function wf_end(x)\n  return x\nend\n\
        later = function(x)\n  return wf_end(x)\nend\n";

    #[test]
    fn keeps_what_the_script_uses_in_file_order() {
        assert_eq!(
            assemble(&[LIB], "return ring(1)"),
            "local function ring(bell)\n  return bell\nend\n-- about be\nreturn ring(1)"
        );
        let text = assemble(&[LIB], "return mp_uint(2)");
        assert!(text.starts_with("local function be(n)"), "{text}");
        assert!(
            text.contains("local function mp_uint") && !text.contains("ring("),
            "{text}"
        );
    }

    #[test]
    fn follows_forward_declarations_into_the_file_that_assigns_them() {
        let text = assemble(&[LIB, WF], "return settle('done')");
        for part in [
            "local FINAL",
            "local later\n",
            "local function settle",
            "local function wf_end",
            "later = function",
        ] {
            assert!(text.contains(part), "{part} missing from:\n{text}");
        }
        assert!(text.find("local later\n") < text.find("later = function"));
        assert!(
            !text.contains("local function ring"),
            "a name in a comment keeps nothing:\n{text}"
        );
    }

    #[test]
    fn a_script_using_nothing_gets_nothing() {
        assert_eq!(assemble(&[LIB, WF], "return 1"), "return 1");
    }
}
