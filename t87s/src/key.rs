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
use std::hash::Hasher;
use std::sync::atomic::{AtomicU32, Ordering};

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
    /// Canonical bytes only, no text: what a typed hit looks a key up by.
    silent: bool,
}

impl KeyParts {
    /// Starts a key with its fixed head (`label::method(`).
    #[inline]
    pub(crate) fn begin(&mut self, head: &str) {
        self.bytes.clear();
        self.text.clear();
        self.text.push_str(head);
        self.start = self.text.len();
        self.silent = false;
    }

    /// Starts the canonical bytes of a key alone (no readable text), for
    /// [`probe`](Self::probe).
    #[inline]
    pub(crate) fn begin_silent(&mut self) {
        self.bytes.clear();
        self.text.clear();
        self.start = 0;
        self.silent = true;
    }

    /// Appends readable text (nothing when silent).
    #[inline]
    fn say(&mut self, text: &str) {
        if !self.silent {
            self.text.push_str(text);
        }
    }

    #[inline]
    fn say_char(&mut self, c: char) {
        if !self.silent {
            self.text.push(c);
        }
    }

    /// Writes readable text with `write`, which runs only when not silent.
    #[inline]
    fn say_with(&mut self, write: impl FnOnce(&mut String)) {
        if !self.silent {
            write(&mut self.text);
        }
    }

    /// What the key begun with [`begin_silent`](Self::begin_silent) is looked
    /// up by, for the method `name`.
    #[inline(always)]
    pub(crate) fn probe(&self, name: &'static KeyName) -> KeyProbe<'_> {
        let form = if self.bytes.len() <= RAW_BYTES {
            Form::Raw(&self.bytes)
        } else {
            Form::Hashed(xxhash_rust::xxh3::xxh3_128(&self.bytes))
        };
        let memo = match name.id() {
            0 => 0,
            // A form's text is at most 48 characters: it fits the low byte.
            id => id << 8 | (form.text_len() as u32 & 0xff),
        };
        KeyProbe {
            name,
            digest: digest_of(name.seed, &form),
            form,
            memo,
        }
    }

    /// Appends one argument: its canonical bytes, and its readable form
    /// after a `, ` if it is not the first.
    #[inline(always)]
    pub(crate) fn arg<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        if !self.bytes.is_empty() {
            self.say(", ");
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

/// `n` in LEB128, in one append (a hit encodes its arguments on every call).
#[inline]
fn varint64(out: &mut Vec<u8>, mut n: u64) {
    // Byte by byte into reserved room: a copy of a few bytes costs more
    // (a `memcpy` call) than the pushes.
    out.reserve(10);
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
    #[inline(always)]
    fn uint(self, tag: u8, v: u64) -> Result<(), KeyError> {
        self.parts.bytes.push(tag);
        varint64(&mut self.parts.bytes, v);
        self.parts
            .say_with(|t| t.push_str(itoa::Buffer::new().format(v)));
        Ok(())
    }

    #[inline(always)]
    fn int(self, tag: u8, v: i64) -> Result<(), KeyError> {
        self.parts.bytes.push(tag);
        // Zigzag: small magnitudes stay small either sign.
        varint64(&mut self.parts.bytes, ((v << 1) ^ (v >> 63)) as u64);
        self.parts
            .say_with(|t| t.push_str(itoa::Buffer::new().format(v)));
        Ok(())
    }

    fn compound(self, tag: u8, open: &str) -> Compound<'a> {
        self.parts.bytes.push(tag);
        self.parts.say(open);
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
        self.parts.say(if v { "true" } else { "false" });
        Ok(())
    }
    #[inline(always)]
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.int(tag::I8, v.into())
    }
    #[inline(always)]
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.int(tag::I16, v.into())
    }
    #[inline(always)]
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.int(tag::I32, v.into())
    }
    #[inline(always)]
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.int(tag::I64, v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::I128);
        varint(&mut self.parts.bytes, ((v << 1) ^ (v >> 127)) as u128);
        self.parts
            .say_with(|t| t.push_str(itoa::Buffer::new().format(v)));
        Ok(())
    }
    #[inline(always)]
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.uint(tag::U8, v.into())
    }
    #[inline(always)]
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.uint(tag::U16, v.into())
    }
    #[inline(always)]
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.uint(tag::U32, v.into())
    }
    #[inline(always)]
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.uint(tag::U64, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::U128);
        varint(&mut self.parts.bytes, v);
        self.parts
            .say_with(|t| t.push_str(itoa::Buffer::new().format(v)));
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::F32);
        self.parts
            .bytes
            .extend_from_slice(&v.to_bits().to_le_bytes());
        self.parts.say_with(|t| t.push_str(&v.to_string()));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::F64);
        self.parts
            .bytes
            .extend_from_slice(&v.to_bits().to_le_bytes());
        self.parts.say_with(|t| t.push_str(&v.to_string()));
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::CHAR);
        varint(&mut self.parts.bytes, u32::from(v).into());
        self.parts.say_with(|t| {
            t.push('\'');
            t.extend(v.escape_debug());
            t.push('\'');
        });
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::STR);
        name(&mut self.parts.bytes, v);
        self.parts.say_with(|t| quoted(t, v));
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::BYTES);
        varint(&mut self.parts.bytes, v.len() as u128);
        self.parts.bytes.extend_from_slice(v);
        self.parts.say("b[");
        self.parts
            .say_with(|t| t.push_str(itoa::Buffer::new().format(v.len())));
        self.parts.say(" bytes]");
        Ok(())
    }
    fn serialize_none(self) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::NONE);
        self.parts.say("None");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::SOME);
        self.parts.say("Some(");
        value.serialize(Encoder { parts: self.parts })?;
        self.parts.say_char(')');
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::UNIT);
        self.parts.say("()");
        Ok(())
    }
    fn serialize_unit_struct(self, n: &'static str) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::UNIT_STRUCT);
        name(&mut self.parts.bytes, n);
        self.parts.say(n);
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
        self.parts.say(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        n: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.parts.bytes.push(tag::NEWTYPE_STRUCT);
        name(&mut self.parts.bytes, n);
        self.parts.say(n);
        self.parts.say_char('(');
        value.serialize(Encoder { parts: self.parts })?;
        self.parts.say_char(')');
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
        self.parts.say(variant);
        self.parts.say_char('(');
        value.serialize(Encoder { parts: self.parts })?;
        self.parts.say_char(')');
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
        self.parts.say_char('(');
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
        self.parts.say(n);
        self.parts.say_char('(');
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
        self.parts.say(variant);
        self.parts.say_char('(');
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
        self.parts.say(n);
        self.parts.say(" { ");
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
        self.parts.say(variant);
        self.parts.say(" { ");
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
            self.parts.say(", ");
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
        self.parts.say(key);
        self.parts.say(": ");
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
                self.parts.say(&entry.text);
            }
        }
        if self.end {
            self.parts.bytes.push(tag::END);
        }
        if self.first && self.close == " }" {
            // `Name { }` reads better as `Name {}`.
            self.parts.say_with(|t| {
                t.pop();
                t.push('}');
            });
        } else {
            self.parts.say(self.close);
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
        let mut entry = KeyParts {
            silent: self.parts.silent,
            ..KeyParts::default()
        };
        key.serialize(Encoder { parts: &mut entry })?;
        entry.say(": ");
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
            silent: self.parts.silent,
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

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The length of a `#[cached]` key's tail: `)@`, 16 hex digits, `:`.
const TAIL_LEN: usize = 19;

/// How a key holds its canonical bytes: as they are (hex in its text), or,
/// past [`RAW_BYTES`], as their 128-bit hash (`#` and hex).
pub(crate) enum Form<'a> {
    Raw(&'a [u8]),
    Hashed(u128),
}

impl Form<'_> {
    /// How long the form is in a key's text.
    fn text_len(&self) -> usize {
        match self {
            Form::Raw(bytes) => 2 * bytes.len(),
            Form::Hashed(_) => 33,
        }
    }

    /// Whether `text` is this form as [`KeyParts::finish`] writes it.
    #[inline(always)]
    fn written_as(&self, text: &[u8]) -> bool {
        match self {
            Form::Raw(bytes) => hex_of(text, bytes),
            Form::Hashed(hash) => match text.split_first() {
                Some((b'#', hex)) => hex_of(hex, &hash.to_be_bytes()),
                _ => false,
            },
        }
    }
}

/// Each byte's two lowercase hex digits, as one little-endian `u16`.
static HEX_PAIRS: [u16; 256] = {
    let mut pairs = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let high = DIGITS[byte >> 4] as u16;
        let low = DIGITS[byte & 0xf] as u16;
        pairs[byte] = high | (low << 8);
        byte += 1;
    }
    pairs
};

/// Whether `hex` is `bytes` in lowercase hex: a table load and one
/// comparison per byte.
#[inline(always)]
fn hex_of(hex: &[u8], bytes: &[u8]) -> bool {
    hex.len() == 2 * bytes.len()
        && hex
            .chunks_exact(2)
            .zip(bytes)
            .all(|(pair, &byte)| match *pair {
                [high, low] => u16::from_le_bytes([high, low]) == HEX_PAIRS[usize::from(byte)],
                _ => false,
            })
}

/// A `#[cached]` method's name in its keys, fixed at compile time: what
/// the key's text starts with, what follows its readable arguments, and
/// the seed of its digest (from the identity in the tail, so computed once);
/// and a number of its own in this process, given on first use, that an
/// entry's key remembers once it was found to have this name's head and
/// tail (so the next call compares only its arguments' form).
///
/// Each `#[cached]` method holds one in a `static`.
#[derive(Debug)]
pub struct KeyName {
    head: &'static str,
    tail: &'static str,
    seed: u64,
    /// 0 until the first call takes a number ([`KeyName::id`]).
    id: AtomicU32,
}

/// The next [`KeyName`] number; numbers at or past [`NO_MORE_IDS`] are not
/// given (a name without one is compared in full every time).
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// Names take numbers below this, so a number and a form's length (below
/// 256) fit one `u32` memo.
const NO_MORE_IDS: u32 = 1 << 24;

impl KeyName {
    /// The name of a method whose keys start with `head` and whose
    /// readable arguments are followed by `tail` (`)@` + 16 hex digits +
    /// `:`); `seed` is [`identity_seed`] of those digits.
    pub const fn new(head: &'static str, tail: &'static str, seed: u64) -> Self {
        Self {
            head,
            tail,
            seed,
            id: AtomicU32::new(0),
        }
    }

    /// What a key starts with.
    pub(crate) fn head(&self) -> &'static str {
        self.head
    }

    /// What follows the readable arguments.
    pub(crate) fn tail(&self) -> &'static str {
        self.tail
    }

    /// The method as events name it when it has no key: the head without `(`.
    pub(crate) fn label(&self) -> &str {
        self.head.strip_suffix('(').unwrap_or(self.head)
    }

    /// This name's number in this process (never reused by another name),
    /// or 0 once numbers ran out.
    #[inline]
    fn id(&self) -> u32 {
        match self.id.load(Ordering::Relaxed) {
            0 => self.take_id(),
            id => id,
        }
    }

    #[cold]
    #[inline(never)]
    fn take_id(&self) -> u32 {
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if !(1..NO_MORE_IDS).contains(&fresh) {
            return 0;
        }
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(taken) => taken,
        }
    }
}

/// The key of one `#[cached]` call as a hit looks it up, without building
/// its text: the method's fixed head and tail, the canonical bytes of the
/// arguments, and the key's digest (the same [`digest`] its text has).
///
/// The readable arguments are not part of it: they are a function of the
/// canonical bytes, which (with the method's identity in the tail) are what
/// make a key unique. A probe [`matches`](Self::matches) a stored key's text
/// exactly on everything else, so a digest collision is never a hit.
pub(crate) struct KeyProbe<'a> {
    name: &'static KeyName,
    form: Form<'a>,
    digest: u64,
    memo: u32,
}

impl KeyProbe<'_> {
    /// The digest of the key's text (see [`digest`]).
    #[inline]
    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// What a key that [`matches`](Self::matches) this probe may remember of
    /// it: the name's number and the length of the form's text. Another
    /// probe with the same memo matches a key that remembers it exactly when
    /// the key ends with its form ([`form_ends`](Self::form_ends)): the
    /// head and the tail before a form of that length were checked when it
    /// was remembered. 0 (never remembered) when the name has no number.
    #[inline]
    pub(crate) fn memo(&self) -> u32 {
        self.memo
    }

    /// Whether `text` ends with this probe's form (see [`memo`](Self::memo)).
    #[inline]
    pub(crate) fn form_ends(&self, text: &[u8]) -> bool {
        text.len()
            .checked_sub(self.form.text_len())
            .is_some_and(|at| self.form.written_as(text.split_at(at).1))
    }

    /// Whether `text` is this call's key: it starts with the head, and ends
    /// with the tail followed by the canonical bytes as `finish` writes them.
    #[inline]
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        let head = self.name.head.as_bytes();
        let tail = self.name.tail.as_bytes();
        let Some(form_at) = text.len().checked_sub(self.form.text_len()) else {
            return false;
        };
        let Some(tail_at) = form_at.checked_sub(tail.len()) else {
            return false;
        };
        if tail_at < head.len() {
            return false;
        }
        let (rest, form) = text.split_at(form_at);
        let (rest, written_tail) = rest.split_at(tail_at);
        let (written_head, _) = rest.split_at(head.len());
        same(written_tail, tail) && same(written_head, head) && self.form.written_as(form)
    }
}

/// Whether two short byte strings are equal, compared a word at a time in
/// line (a call to `memcmp` costs more than the comparison, for keys).
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        if n < 4 {
            return a.iter().zip(b).all(|(x, y)| x == y);
        }
        // The first four bytes and the last four (overlapping).
        let half = |s: &[u8], at: usize| {
            s.get(at..at + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .map(u32::from_ne_bytes)
        };
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before it.
    word(a, n - 8) == word(b, n - 8)
}

/// A 64-bit digest of a key's text, for in-process maps to hash instead of
/// the whole text. A `#[cached]` key (`…)@` + 16 hex digits of identity +
/// `:` + its canonical bytes) digests its identity and canonical bytes only,
/// so a [`KeyProbe`] gets the same digest without the text; any other key
/// digests its whole text. Equal texts always have equal digests.
#[inline]
pub(crate) fn digest(text: &str) -> u64 {
    typed_digest(text).unwrap_or_else(|| hash_bytes(UNTYPED_SEED, text.as_bytes()))
}

/// The seed of keys that are not `#[cached]` keys.
const UNTYPED_SEED: u64 = 0x7438_3773_2d6b_6579;

/// The digest of a text that ends like a `#[cached]` key. Read from the
/// end, so any other key is told apart in a character or two.
fn typed_digest(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    // Shorter than any tail (`)@`, 16 hex digits, `:`): not a typed key.
    if bytes.len() < TAIL_LEN {
        return None;
    }
    let is_hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
    // The form: hex digits (up to the raw bytes' worth), or `#` and 32 of
    // them, after the `:` that ends the tail `)@` + 16 hex digits + `:`.
    let digits = bytes
        .iter()
        .rev()
        .take(2 * RAW_BYTES + 1)
        .take_while(|c| is_hex(c))
        .count();
    let form_at = bytes.len().checked_sub(digits)?;
    let hashed = form_at > 0 && bytes.get(form_at - 1) == Some(&b'#');
    let colon = form_at.checked_sub(if hashed { 2 } else { 1 })?;
    let at = colon.checked_sub(17)?;
    if bytes.get(colon) != Some(&b':') || bytes.get(at) != Some(&b'@') {
        return None;
    }
    let identity: &[u8; 16] = bytes.get(at + 1..colon)?.try_into().ok()?;
    if !identity.iter().all(is_hex) {
        return None;
    }
    let hex = bytes.get(form_at..)?;
    let mut raw = [0u8; RAW_BYTES];
    let form = if hashed {
        let mut hash = [0u8; 16];
        (unhex(hex, &mut hash)? == 16).then_some(())?;
        Form::Hashed(u128::from_be_bytes(hash))
    } else {
        let len = unhex(hex, &mut raw)?;
        Form::Raw(raw.get(..len)?)
    };
    Some(digest_of(identity_seed(identity), &form))
}

/// Decodes lowercase hex into `out` (all of it, for a 16-byte hash; up to
/// its length otherwise): how many bytes were written, or `None`.
fn unhex(hex: &[u8], out: &mut [u8]) -> Option<usize> {
    if !hex.len().is_multiple_of(2) || hex.len() / 2 > out.len() {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(hex.len() / 2)
}

/// The digest seed of a method's identity (the 16 hex digits of its key's
/// tail): computed at compile time for a [`KeyName`], and from the text
/// when a typed key is digested from its text.
pub(crate) const fn identity_seed(identity: &[u8; 16]) -> u64 {
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        high[i] = identity[i];
        low[i] = identity[i + 8];
        i += 1;
    }
    u64::from_le_bytes(high) ^ u64::from_le_bytes(low).rotate_left(32)
}

/// The digest of a typed key from its identity's seed and its form.
#[inline]
fn digest_of(seed: u64, form: &Form<'_>) -> u64 {
    match form {
        Form::Raw(bytes) => hash_bytes(seed, bytes),
        Form::Hashed(hash) => hash_bytes(!seed, &hash.to_be_bytes()),
    }
}

/// A 64-bit hash of `bytes` with `seed`, keyed by a random seed of the
/// process (digests never leave it): foldhash, a few multiplications for
/// a short key.
#[inline]
fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut hasher =
        foldhash::fast::FoldHasher::with_seed(seed, foldhash::SharedSeed::global_random());
    hasher.write(bytes);
    hasher.finish()
}

#[inline]
fn push_hex(out: &mut String, bytes: &[u8]) {
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
    use super::{concat, digest, identity_seed, last_segment, push_hex, same, KeyName, KeyParts};

    const HEAD: &str = "blog::post(";
    const TAIL: &str = ")@0123456789abcdef:";
    static NAME: KeyName = KeyName::new(HEAD, TAIL, identity_seed(b"0123456789abcdef"));

    /// Byte strings of every length up to 40 are equal only when every
    /// byte is: a difference at any position is seen, whichever words the
    /// comparison takes.
    #[test]
    fn same_sees_a_difference_at_every_position() {
        for n in 0..40u8 {
            let a: Vec<u8> = (0..n).collect();
            assert!(same(&a, &a.clone()), "length {n}");
            for at in 0..usize::from(n) {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same(&a, &b), "length {n}, byte {at}");
            }
            let longer: Vec<u8> = (0..=n).collect();
            assert!(!same(&a, &longer), "lengths {n} and {}", n + 1);
        }
    }

    /// The text of a key with `args`, and its parts begun silent for a probe.
    fn both(args: &[&str]) -> (String, KeyParts) {
        let mut text = KeyParts::default();
        text.begin(HEAD);
        let mut silent = KeyParts::default();
        silent.begin_silent();
        for arg in args {
            text.arg(arg).expect("encodes");
            silent.arg(arg).expect("encodes");
        }
        text.finish(TAIL);
        assert!(silent.text.is_empty(), "a silent key writes no text");
        (text.text, silent)
    }

    #[test]
    fn a_probe_finds_the_text_it_stands_for() {
        let long = "x".repeat(100); // past the raw bytes: hashed in the key
        let cases: [&[&str]; 5] = [
            &[],
            &["1"],
            &["a@b", ":c"],
            &[")@0123456789abcdef:07"],
            &[&long],
        ];
        for args in cases {
            let (text, silent) = both(args);
            let probe = silent.probe(&NAME);
            assert_eq!(probe.digest(), digest(&text), "{text}");
            assert!(probe.matches(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn a_probe_never_matches_another_key() {
        let (_, silent) = both(&["1"]);
        let probe = silent.probe(&NAME);
        for (other, _) in [both(&["2"]), both(&["1", "1"]), both(&["11"])] {
            assert!(!probe.matches(other.as_bytes()), "{other}");
        }
        let (text, _) = both(&["1"]);
        for other in [
            text.replace("blog::post(", "blog::posts("),
            text.replace("0123456789abcdef", "0123456789abcdee"),
            format!("{text}0"),
            text.get(1..).unwrap_or_default().to_owned(),
            String::new(),
        ] {
            assert!(!probe.matches(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn other_keys_digest_their_whole_text() {
        assert_ne!(digest("user:1"), digest("user:2"));
        assert_ne!(
            digest("a@0123456789abcdef:07"),
            digest("b@0123456789abcdef:08")
        );
        // A key that ends like a typed one digests like it (equal texts,
        // equal digests, whatever their source).
        let (text, _) = both(&["1"]);
        assert_eq!(digest(&text), digest(&text.clone()));
    }

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
