//! Queue elements: a payload, or a redelivered payload carrying its delivery count.

/// First byte of a redelivered element. 0xc1 is never used by msgpack and is not `{` (WakaQ's JSON).
pub const REDELIVERY_MARK: u8 = 0xc1;

/// How many interrupted deliveries dead-list a task (a poison pill that keeps killing its child).
pub const MAX_DELIVERIES: u32 = 3;

/// Split an element into (delivery count, payload).
pub fn split(element: &[u8]) -> (u8, &[u8]) {
    match element {
        [REDELIVERY_MARK, count, rest @ ..] => (*count, rest),
        _ => (0, element),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_redelivered() {
        assert_eq!(split(b"\x84abc"), (0, &b"\x84abc"[..]));
        assert_eq!(split(b"\xc1\x02\x84abc"), (2, &b"\x84abc"[..]));
        assert_eq!(split(b"\xc1"), (0, &b"\xc1"[..]));
        assert_eq!(split(b""), (0, &b""[..]));
    }
}
