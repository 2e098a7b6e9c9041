//! Cache keys of `#[cached]` calls: a canonical, self-describing encoding of
//! the arguments (so distinct argument lists never share a key), written in
//! the same pass as a readable rendering for logs and events.
//!
//! The canonical bytes record every value's kind and Rust width, lengths,
//! struct and variant names, which fields are present and which were skipped
//! (`skip_serializing_if`), variant identity, and map entries (sorted, so a
//! `HashMap`'s iteration order does not matter). Every value is
//! self-delimiting, so the concatenation of the arguments' encodings is
//! itself unambiguous.

use std::fmt;

use serde::ser::{self, Serialize};

/// Why an argument could not be encoded (its `Serialize` impl failed).
#[derive(Debug)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an argument could not be encoded into the cache key: {}",
            self.0
        )
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

/// How many characters of readable arguments a key shows before `…`.
const READABLE_ARGS: usize = 64;

/// Value tags of the canonical encoding. `END` closes a sequence, map or
/// struct; no value starts with it.
mod tag {
    pub const END: u8 = 0x00;
    pub const UNIT: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const U8: u8 = 0x04;
    pub const U16: u8 = 0x05;
    pub const U32: u8 = 0x06;
    pub const U64: u8 = 0x07;
    pub const U128: u8 = 0x08;
    pub const I8: u8 = 0x09;
    pub const I16: u8 = 0x0a;
    pub const I32: u8 = 0x0b;
    pub const I64: u8 = 0x0c;
    pub const I128: u8 = 0x0d;
    pub const F32: u8 = 0x0e;
    pub const F64: u8 = 0x0f;
    pub const CHAR: u8 = 0x10;
    pub const STR: u8 = 0x11;
    pub const BYTES: u8 = 0x12;
    pub const NONE: u8 = 0x13;
    pub const SOME: u8 = 0x14;
    pub const UNIT_STRUCT: u8 = 0x15;
    pub const UNIT_VARIANT: u8 = 0x16;
    pub const NEWTYPE_STRUCT: u8 = 0x17;
    pub const NEWTYPE_VARIANT: u8 = 0x18;
    pub const SEQ: u8 = 0x19;
    pub const TUPLE: u8 = 0x1a;
    pub const TUPLE_STRUCT: u8 = 0x1b;
    pub const TUPLE_VARIANT: u8 = 0x1c;
    pub const MAP: u8 = 0x1d;
    pub const STRUCT: u8 = 0x1e;
    pub const STRUCT_VARIANT: u8 = 0x1f;
    pub const FIELD: u8 = 0x20;
    pub const SKIPPED: u8 = 0x21;
}

/// Where one key is built: the canonical bytes, and the key's text, into
/// which the readable arguments are written directly (after the head).
#[derive(Default)]
pub(crate) struct KeyParts {
    pub(crate) bytes: Vec<u8>,
    pub(crate) text: String,
    /// Where the readable arguments start in `text`.
    start: usize,
}

impl KeyParts {
    /// Starts a key with its fixed head (`label::method(`).
    #[inline]
    pub(crate) fn begin(&mut self, head: &str) {
        self.bytes.clear();
        self.text.clear();
        self.text.push_str(head);
        self.start = self.text.len();
    }

    /// Appends one argument: its canonical bytes, and its readable form
    /// after a `, ` if it is not the first.
    pub(crate) fn arg<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        if !self.bytes.is_empty() {
            self.text.push_str(", ");
        }
        value.serialize(Encoder { parts: self })
    }

    /// Ends the key: the readable arguments cut to [`READABLE_ARGS`]
    /// characters, then the fixed `tail` (`)@identity:`), then the canonical
    /// bytes in hex (or `#` and a 128-bit hash of them, when long).
    ///
    /// The readable part is for people; the identity and the canonical
    /// bytes are what make the key unique.
    #[inline]
    pub(crate) fn finish(&mut self, tail: &str) {
        if self.text.len() - self.start > READABLE_ARGS {
            let readable = self.text.get(self.start..).unwrap_or("");
            if let Some((at, _)) = readable.char_indices().nth(READABLE_ARGS) {
                self.text.truncate(self.start + at);
                self.text.push('…');
            }
        }
        self.text.push_str(tail);
        if self.bytes.len() <= RAW_BYTES {
            push_hex(&mut self.text, &self.bytes);
        } else {
            self.text.push('#');
            let hash = xxhash_rust::xxh3::xxh3_128(&self.bytes).to_be_bytes();
            push_hex(&mut self.text, &hash);
        }
    }
}

/// The canonical encoding of one value, and its readable form.
pub(crate) fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, String), KeyError> {
    let mut parts = KeyParts::default();
    parts.arg(value)?;
    Ok((parts.bytes, parts.text))
}

fn varint(out: &mut Vec<u8>, n: u128) {
    match u64::try_from(n) {
        Ok(small) => varint64(out, small),
        Err(_) => {
            let mut n = n;
            loop {
                let low = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(low);
                    return;
                }
                out.push(low | 0x80);
            }
        }
    }
}

#[inline]
fn varint64(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn name(out: &mut Vec<u8>, name: &str) {
    varint(out, name.len() as u128);
    out.extend_from_slice(name.as_bytes());
}

fn quoted(text: &mut String, s: &str) {
    text.push('"');
    for c in s.chars() {
        match c {
            '"' => text.push_str("\\\""),
            '\\' => text.push_str("\\\\"),
            c if c.is_control() => text.extend(c.escape_default()),
            c => text.push(c),
        }
    }
    text.push('"');
}

struct Encoder<'a> {
    parts: &'a mut KeyParts,
}

impl<'a> Encoder<'a> {
    #[inline]
    fn uint(self, tag: u8, v: u64) -> Result<(), KeyError> {
        self.parts.bytes.push(tag);
        varint64(&mut self.parts.bytes, v);
        self.parts.text.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }

    #[inline]
    fn int(self, tag: u8, v: i64) -> Result<(), KeyError> {
        self.parts.bytes.push(tag);
        // Zigzag: small magnitudes stay small either sign.
        varint64(&mut self.parts.bytes, ((v << 1) ^ (v >> 63)) as u64);
        self.parts.text.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }

    fn compound(self, tag: u8, open: &str) -> Compound<'a> {
        self.parts.bytes.push(tag);
        self.parts.text.push_str(open);
        Compound {
            parts: self.parts,
            first: true,
            close: "",
            end: false,
            entries: None,
        }
    }
}

impl<'a> ser::Serializer for Encoder<'a> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.parts
            .bytes
            .push(if v { tag::TRUE } else { tag::FALSE });
        self.parts.text.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.int(tag::I8, v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.int(tag::I16, v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.int(tag::I32, v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.int(tag::I64, v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::I128);
        varint(&mut self.parts.bytes, ((v << 1) ^ (v >> 127)) as u128);
        self.parts.text.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.uint(tag::U8, v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.uint(tag::U16, v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.uint(tag::U32, v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.uint(tag::U64, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::U128);
        varint(&mut self.parts.bytes, v);
        self.parts.text.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::F32);
        self.parts
            .bytes
            .extend_from_slice(&v.to_bits().to_le_bytes());
        self.parts.text.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::F64);
        self.parts
            .bytes
            .extend_from_slice(&v.to_bits().to_le_bytes());
        self.parts.text.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::CHAR);
        varint(&mut self.parts.bytes, u32::from(v).into());
        self.parts.text.push('\'');
        self.parts.text.extend(v.escape_debug());
        self.parts.text.push('\'');
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::STR);
        name(&mut self.parts.bytes, v);
        quoted(&mut self.parts.text, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::BYTES);
        varint(&mut self.parts.bytes, v.len() as u128);
        self.parts.bytes.extend_from_slice(v);
        self.parts.text.push_str("b[");
        self.parts
            .text
            .push_str(itoa::Buffer::new().format(v.len()));
        self.parts.text.push_str(" bytes]");
        Ok(())
    }
    fn serialize_none(self) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::NONE);
        self.parts.text.push_str("None");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::SOME);
        self.parts.text.push_str("Some(");
        value.serialize(Encoder { parts: self.parts })?;
        self.parts.text.push(')');
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::UNIT);
        self.parts.text.push_str("()");
        Ok(())
    }
    fn serialize_unit_struct(self, n: &'static str) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::UNIT_STRUCT);
        name(&mut self.parts.bytes, n);
        self.parts.text.push_str(n);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        n: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::UNIT_VARIANT);
        name(&mut self.parts.bytes, n);
        varint(&mut self.parts.bytes, index.into());
        name(&mut self.parts.bytes, variant);
        self.parts.text.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        n: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::NEWTYPE_STRUCT);
        name(&mut self.parts.bytes, n);
        self.parts.text.push_str(n);
        self.parts.text.push('(');
        value.serialize(Encoder { parts: self.parts })?;
        self.parts.text.push(')');
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        n: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::NEWTYPE_VARIANT);
        name(&mut self.parts.bytes, n);
        varint(&mut self.parts.bytes, index.into());
        name(&mut self.parts.bytes, variant);
        self.parts.text.push_str(variant);
        self.parts.text.push('(');
        value.serialize(Encoder { parts: self.parts })?;
        self.parts.text.push(')');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, KeyError> {
        let mut c = self.compound(tag::SEQ, "[");
        c.close = "]";
        c.end = true;
        Ok(c)
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, KeyError> {
        self.parts.bytes.push(tag::TUPLE);
        varint(&mut self.parts.bytes, len as u128);
        self.parts.text.push('(');
        Ok(Compound {
            parts: self.parts,
            first: true,
            close: ")",
            end: false,
            entries: None,
        })
    }
    fn serialize_tuple_struct(self, n: &'static str, len: usize) -> Result<Compound<'a>, KeyError> {
        self.parts.bytes.push(tag::TUPLE_STRUCT);
        name(&mut self.parts.bytes, n);
        varint(&mut self.parts.bytes, len as u128);
        self.parts.text.push_str(n);
        self.parts.text.push('(');
        Ok(Compound {
            parts: self.parts,
            first: true,
            close: ")",
            end: false,
            entries: None,
        })
    }
    fn serialize_tuple_variant(
        self,
        n: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        self.parts.bytes.push(tag::TUPLE_VARIANT);
        name(&mut self.parts.bytes, n);
        varint(&mut self.parts.bytes, index.into());
        name(&mut self.parts.bytes, variant);
        varint(&mut self.parts.bytes, len as u128);
        self.parts.text.push_str(variant);
        self.parts.text.push('(');
        Ok(Compound {
            parts: self.parts,
            first: true,
            close: ")",
            end: false,
            entries: None,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, KeyError> {
        let mut c = self.compound(tag::MAP, "{");
        c.close = "}";
        c.end = true;
        c.entries = Some(Vec::new());
        Ok(c)
    }
    fn serialize_struct(self, n: &'static str, _len: usize) -> Result<Compound<'a>, KeyError> {
        self.parts.bytes.push(tag::STRUCT);
        name(&mut self.parts.bytes, n);
        self.parts.text.push_str(n);
        self.parts.text.push_str(" { ");
        Ok(Compound {
            parts: self.parts,
            first: true,
            close: " }",
            end: true,
            entries: None,
        })
    }
    fn serialize_struct_variant(
        self,
        n: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        self.parts.bytes.push(tag::STRUCT_VARIANT);
        name(&mut self.parts.bytes, n);
        varint(&mut self.parts.bytes, index.into());
        name(&mut self.parts.bytes, variant);
        self.parts.text.push_str(variant);
        self.parts.text.push_str(" { ");
        Ok(Compound {
            parts: self.parts,
            first: true,
            close: " }",
            end: true,
            entries: None,
        })
    }
}

/// A map entry encoded on its own, to be sorted with its siblings.
struct Entry {
    bytes: Vec<u8>,
    text: String,
}

/// A sequence, tuple, map or struct being written.
struct Compound<'a> {
    parts: &'a mut KeyParts,
    first: bool,
    close: &'static str,
    /// Ends with `END` (its length was not written up front).
    end: bool,
    /// A map's entries, sorted by their bytes when it ends.
    entries: Option<Vec<Entry>>,
}

impl Compound<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.parts.text.push_str(", ");
        }
        self.first = false;
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.separate();
        value.serialize(Encoder { parts: self.parts })
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.separate();
        self.parts.bytes.push(tag::FIELD);
        name(&mut self.parts.bytes, key);
        self.parts.text.push_str(key);
        self.parts.text.push_str(": ");
        value.serialize(Encoder { parts: self.parts })
    }

    fn skipped(&mut self, key: &'static str) {
        self.parts.bytes.push(tag::SKIPPED);
        name(&mut self.parts.bytes, key);
    }

    fn finish(mut self) -> Result<(), KeyError> {
        if let Some(mut entries) = self.entries.take() {
            entries.sort_by(|a, b| a.bytes.cmp(&b.bytes));
            for entry in entries {
                self.separate();
                self.parts.bytes.extend_from_slice(&entry.bytes);
                self.parts.text.push_str(&entry.text);
            }
        }
        if self.end {
            self.parts.bytes.push(tag::END);
        }
        if self.first && self.close == " }" {
            // `Name { }` reads better as `Name {}`.
            self.parts.text.pop();
            self.parts.text.push('}');
        } else {
            self.parts.text.push_str(self.close);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        let mut entry = KeyParts::default();
        key.serialize(Encoder { parts: &mut entry })?;
        entry.text.push_str(": ");
        if let Some(entries) = &mut self.entries {
            entries.push(Entry {
                bytes: entry.bytes,
                text: entry.text,
            });
        }
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        let Some(entry) = self.entries.as_mut().and_then(|e| e.last_mut()) else {
            return Err(KeyError("a map value came before its key".into()));
        };
        let mut parts = KeyParts {
            bytes: std::mem::take(&mut entry.bytes),
            text: std::mem::take(&mut entry.text),
            start: 0,
        };
        let done = value.serialize(Encoder { parts: &mut parts });
        entry.bytes = parts.bytes;
        entry.text = parts.text;
        done
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.field(key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        self.skipped(key);
        Ok(())
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.field(key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        self.skipped(key);
        Ok(())
    }
    fn end(self) -> Result<(), KeyError> {
        self.finish()
    }
}

/// Canonical bytes up to this long go into the key as hex; longer ones as
/// a 128-bit hash of them.
const RAW_BYTES: usize = 24;

#[inline]
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// `parts` joined, as the bytes of a constant `&str` of length `N`
/// (`N` must be their total length).
pub(crate) const fn concat<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut p = 0;
    while p < parts.len() {
        let bytes = parts[p].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            out[at] = bytes[i];
            at += 1;
            i += 1;
        }
        p += 1;
    }
    out
}

/// A 64-bit FNV-1a step, usable in constants.
const fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The identity of a cached method as 16 hex digits, computed at compile
/// time: its module path and source position and name, or, when pinned,
/// the pinned name alone; then its version.
pub(crate) const fn identity_hex(
    module: &str,
    line: u32,
    column: u32,
    method: &str,
    pinned: &str,
    version: u32,
) -> [u8; 16] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    if pinned.is_empty() {
        hash = fnv(hash, b"method\xff");
        hash = fnv(hash, module.as_bytes());
        hash = fnv(hash, &[0xff]);
        hash = fnv(hash, &line.to_le_bytes());
        hash = fnv(hash, &column.to_le_bytes());
        hash = fnv(hash, method.as_bytes());
    } else {
        hash = fnv(hash, b"name\xff");
        hash = fnv(hash, pinned.as_bytes());
    }
    hash = fnv(hash, &[0xff]);
    hash = fnv(hash, &version.to_le_bytes());
    let mut out = [0u8; 16];
    let digits = b"0123456789abcdef";
    let mut i = 0;
    while i < 16 {
        out[i] = digits[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// The last segment of a module path (`app::cache` -> `cache`).
pub(crate) const fn last_segment(path: &str) -> &str {
    let bytes = path.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        if bytes[i - 1] == b':' {
            break;
        }
        i -= 1;
    }
    match core::str::from_utf8(bytes.split_at(i).1) {
        Ok(last) => last,
        Err(_) => path,
    }
}

#[cfg(test)]
mod tests {
    use super::{concat, last_segment, push_hex};

    #[test]
    fn hex_matches_formatting() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = String::new();
        push_hex(&mut out, &all);
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn constant_heads_join_their_parts() {
        const HEAD: [u8; 11] = concat(&["blog", "::", "post", "("]);
        assert_eq!(&HEAD, b"blog::post(");
    }

    #[test]
    fn last_segment_of_module_paths() {
        assert_eq!(last_segment("app::cache"), "cache");
        assert_eq!(last_segment("app"), "app");
    }
}
