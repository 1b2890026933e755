//! [`CacheKey`]: how an argument of a `#[cached]` function becomes one part of its key.
//!
//! The grammar (what is escaped, how `None`, tuples and lists are written) lives in
//! [`cache_keys::key`], shared with the macros; this module implements it for the usual argument
//! types. Every impl appends to one `String` the macro pre-sizes, with no allocation per part.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use cache_keys::key::{
    finish_some, push_list, push_text, ITEM_SEPARATOR, NONE, TUPLE_CLOSE, TUPLE_OPEN,
};

/// A value that can be one part of a cache key.
///
/// Implemented for integers, `bool`, `char`, `str`/`String`, `Option`, tuples (up to 8), slices,
/// arrays and `Vec`, `()`, references, `Box`, `Rc`, `Arc` and `Cow`; for `uuid::Uuid` with the
/// `uuid` feature and for chrono's dates and times with the `chrono` feature.
///
/// The encoding is injective: two different values of one type never write the same text, and a
/// part can never run into the next one (`:` and the other structural characters are escaped).
/// Floats are deliberately not keys (`NaN != NaN`, `0.0 == -0.0`): use `key_builder`, or
/// `skip(..)` the argument.
///
/// ```
/// use cache_core::CacheKey;
///
/// assert_eq!(42_i64.to_key(), "42");
/// assert_eq!("a:b".to_key(), r"a\:b");
/// assert_eq!((1, "x").to_key(), "(1,x)");
/// assert_eq!(vec![Some(1), None].to_key(), "[1,~]");
/// ```
///
/// Your own types:
///
/// ```
/// use cache_core::CacheKey;
///
/// struct UserId(u64);
///
/// impl CacheKey for UserId {
///     fn write_key(&self, out: &mut String) {
///         self.0.write_key(out)
///     }
/// }
/// assert_eq!(UserId(7).to_key(), "7");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "not a cache key part",
    note = "leave this argument out of the key with `#[cached(skip(name))]`, build the key yourself \
            with `#[cached(key_builder = path)]`, or implement `cache_core::CacheKey` for `{Self}`"
)]
pub trait CacheKey {
    /// Appends this value's key part to `out`.
    ///
    /// Text must go through [`cache_keys::key::push_text`] (or another impl) so that its `:`,
    /// `\` and other structural characters are escaped.
    fn write_key(&self, out: &mut String);

    /// This value's key part on its own.
    fn to_key(&self) -> String {
        let mut out = String::with_capacity(16);
        self.write_key(&mut out);
        out
    }
}

macro_rules! display_keys {
    ($($t:ty),* $(,)?) => {$(
        impl CacheKey for $t {
            fn write_key(&self, out: &mut String) {
                // Writing to a String cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

display_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool);

macro_rules! nonzero_keys {
    ($($t:ty),* $(,)?) => {$(
        impl CacheKey for $t {
            fn write_key(&self, out: &mut String) {
                self.get().write_key(out)
            }
        }
    )*};
}

nonzero_keys!(
    std::num::NonZeroU8,
    std::num::NonZeroU16,
    std::num::NonZeroU32,
    std::num::NonZeroU64,
    std::num::NonZeroU128,
    std::num::NonZeroUsize,
    std::num::NonZeroI8,
    std::num::NonZeroI16,
    std::num::NonZeroI32,
    std::num::NonZeroI64,
    std::num::NonZeroI128,
    std::num::NonZeroIsize,
);

impl CacheKey for str {
    fn write_key(&self, out: &mut String) {
        push_text(out, self);
    }
}

impl CacheKey for String {
    fn write_key(&self, out: &mut String) {
        push_text(out, self);
    }
}

impl CacheKey for char {
    fn write_key(&self, out: &mut String) {
        push_text(out, self.encode_utf8(&mut [0; 4]));
    }
}

impl CacheKey for () {
    fn write_key(&self, out: &mut String) {
        out.push(TUPLE_OPEN);
        out.push(TUPLE_CLOSE);
    }
}

impl<T: CacheKey> CacheKey for Option<T> {
    fn write_key(&self, out: &mut String) {
        match self {
            None => out.push_str(NONE),
            Some(value) => {
                let start = out.len();
                value.write_key(out);
                finish_some(out, start);
            }
        }
    }
}

impl<T: CacheKey> CacheKey for [T] {
    fn write_key(&self, out: &mut String) {
        push_list(out, self, |out, item| item.write_key(out));
    }
}

impl<T: CacheKey, const N: usize> CacheKey for [T; N] {
    fn write_key(&self, out: &mut String) {
        self.as_slice().write_key(out);
    }
}

impl<T: CacheKey> CacheKey for Vec<T> {
    fn write_key(&self, out: &mut String) {
        self.as_slice().write_key(out);
    }
}

macro_rules! forward_keys {
    ($($t:ty),* $(,)?) => {$(
        impl<T: CacheKey + ?Sized> CacheKey for $t {
            fn write_key(&self, out: &mut String) {
                (**self).write_key(out)
            }
        }
    )*};
}

forward_keys!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);

impl<T: CacheKey + ToOwned + ?Sized> CacheKey for Cow<'_, T> {
    fn write_key(&self, out: &mut String) {
        (**self).write_key(out)
    }
}

macro_rules! tuple_keys {
    ($(($($name:ident),+)),* $(,)?) => {$(
        impl<$($name: CacheKey),+> CacheKey for ($($name,)+) {
            #[allow(non_snake_case)]
            fn write_key(&self, out: &mut String) {
                let ($($name,)+) = self;
                out.push(TUPLE_OPEN);
                let mut _first = true;
                $(
                    if !_first {
                        out.push(ITEM_SEPARATOR);
                    }
                    _first = false;
                    $name.write_key(out);
                )+
                out.push(TUPLE_CLOSE);
            }
        }
    )*};
}

tuple_keys!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
);

#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl CacheKey for uuid::Uuid {
    /// The hyphenated lower-case form: `67e55044-10b1-426f-9247-bb680e5fe0c8`.
    fn write_key(&self, out: &mut String) {
        let mut buf = uuid::Uuid::encode_buffer();
        out.push_str(self.hyphenated().encode_lower(&mut buf));
    }
}

#[cfg(feature = "chrono")]
mod chrono_keys {
    use crate::key::CacheKey;
    use cache_keys::key::push_text;
    use std::fmt::Write as _;

    /// RFC 3339 with the offset as given (`2024-05-01T12:00:00+00:00`, `:` escaped): the same
    /// instant in two offsets gives two keys, each stable.
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    impl<Tz: chrono::TimeZone> CacheKey for chrono::DateTime<Tz>
    where
        Tz::Offset: std::fmt::Display,
    {
        fn write_key(&self, out: &mut String) {
            push_text(out, &self.to_rfc3339());
        }
    }

    /// `2024-05-01`.
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    impl CacheKey for chrono::NaiveDate {
        fn write_key(&self, out: &mut String) {
            let _ = write!(out, "{}", self.format("%Y-%m-%d"));
        }
    }

    /// `2024-05-01T12:00:00.5` with `:` escaped.
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    impl CacheKey for chrono::NaiveDateTime {
        fn write_key(&self, out: &mut String) {
            push_text(out, &self.format("%Y-%m-%dT%H:%M:%S%.f").to_string());
        }
    }

    /// `12:00:00.5` with `:` escaped.
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    impl CacheKey for chrono::NaiveTime {
        fn write_key(&self, out: &mut String) {
            push_text(out, &self.format("%H:%M:%S%.f").to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_text() {
        assert_eq!((-5_i32).to_key(), "-5");
        assert_eq!(true.to_key(), "true");
        assert_eq!(':'.to_key(), "\\:");
        assert_eq!("user@example.com".to_key(), "user@example.com");
        assert_eq!(String::from("a\\b").to_key(), "a\\\\b");
        assert_eq!(().to_key(), "()");
        assert_eq!(std::num::NonZeroU8::MIN.to_key(), "1");
    }

    #[test]
    fn composites_stay_apart() {
        let none: Option<&str> = None;
        assert_eq!(none.to_key(), "~");
        assert_eq!(Some("").to_key(), "");
        assert_eq!(Some("~").to_key(), "\\~");
        assert_eq!(Some(None::<u8>).to_key(), "~~");
        assert_eq!(Vec::<String>::new().to_key(), "[]");
        assert_eq!(vec![String::new()].to_key(), "[\\e]");
        assert_eq!(vec!["", ""].to_key(), "[,]");
        assert_eq!(("a,b", "c").to_key(), "(a\\,b,c)");
        assert_eq!(("a", "b,c").to_key(), "(a,b\\,c)");
        assert_eq!([[1, 2], [3, 4]].to_key(), "[[1,2],[3,4]]");
    }

    #[test]
    fn wrappers_forward() {
        let s: &str = "x:y";
        assert_eq!(s.to_key(), (&s).to_key());
        assert_eq!(Box::new(3u8).to_key(), "3");
        assert_eq!(Arc::<str>::from("a").to_key(), "a");
        assert_eq!(Cow::Borrowed("b").to_key(), "b");
        assert_eq!(Rc::new(vec![1u8]).to_key(), "[1]");
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_are_hyphenated_lower_case() {
        let id = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        assert_eq!(id.to_key(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_types_escape_their_colons() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let date = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap_or_default();
        assert_eq!(date.to_key(), "2024-05-01");
        let time = date.and_hms_opt(12, 30, 0).unwrap_or_default();
        assert_eq!(time.to_key(), "2024-05-01T12\\:30\\:00");
        assert_eq!(time.time().to_key(), "12\\:30\\:00");
        let utc = Utc.from_utc_datetime(&time);
        assert_eq!(utc.to_key(), "2024-05-01T12\\:30\\:00+00\\:00");
    }
}
