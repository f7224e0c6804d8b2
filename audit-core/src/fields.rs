//! [`AuditEntry::fields`]: an entry as the list of its serialised fields, for writers that need
//! a flat row (CSV, a table) rather than a JSON object.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::Value;

use crate::entry::AuditEntry;

impl AuditEntry {
    /// Every field of the entry's serialised form, in declaration order, with its JSON value:
    /// what a flat writer (a CSV row, a table's columns) is made from, so a field added to the
    /// entry reaches it with no change.
    ///
    /// ```
    /// use audit_core::{Action, AuditEntry};
    ///
    /// let entry = AuditEntry::builder(Action::Create).tenant("acme").build();
    /// let fields = entry.fields();
    /// assert_eq!(fields[0].0, "id");
    /// let tenant = fields.iter().find(|(name, _)| *name == "tenant_id").unwrap();
    /// assert_eq!(tenant.1, "acme");
    /// assert_eq!(fields.len(), AuditEntry::field_names().len());
    /// ```
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        self.collect::<AsValue>()
    }

    /// [`fields`](Self::fields) as JSON text, in which the objects inside a field (each of
    /// `changes`) keep their declaration order (`field`, `old`, `new`), where a
    /// [`Value`](serde_json::Value) sorts their keys: for writers of text, such as CSV.
    ///
    /// ```
    /// use audit_core::{Action, AuditEntry, Change};
    ///
    /// let entry = AuditEntry::builder(Action::Update)
    ///     .changes(vec![Change::new("host", "a".into(), "b".into())])
    ///     .build();
    /// let texts = entry.fields_as_json();
    /// let changes = texts.iter().find(|(name, _)| *name == "changes").unwrap();
    /// assert_eq!(changes.1, r#"[{"field":"host","old":"a","new":"b"}]"#);
    /// ```
    pub fn fields_as_json(&self) -> Vec<(&'static str, String)> {
        self.collect::<AsText>()
    }

    fn collect<C: Collect>(&self) -> Vec<(&'static str, C::Out)> {
        let mut fields = Fields::<C>(Vec::with_capacity(32));
        // Every part of an entry serialises to JSON (strings, numbers, maps with string keys),
        // so this cannot fail; were it to, the fields gathered so far are what there is.
        let _ = self.serialize(&mut fields);
        fields.0
    }

    /// The names of [`fields`](Self::fields), in order: the columns of a flat row.
    pub fn field_names() -> Vec<&'static str> {
        let blank = AuditEntry::with_id(
            uuid::Uuid::nil(),
            chrono::DateTime::UNIX_EPOCH,
            crate::Action::Create,
        );
        blank.fields().into_iter().map(|(name, _)| name).collect()
    }
}

/// What a field's value is kept as.
trait Collect {
    type Out;
    fn collect<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self::Out>;
}

/// A JSON value.
struct AsValue;

impl Collect for AsValue {
    type Out = Value;
    fn collect<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Value> {
        serde_json::to_value(value)
    }
}

/// JSON text, in declaration order.
struct AsText;

impl Collect for AsText {
    type Out = String;
    fn collect<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
        serde_json::to_string(value)
    }
}

/// A serde serializer that accepts one struct and keeps its fields.
struct Fields<C: Collect>(Vec<(&'static str, C::Out)>);

impl<C: Collect> ser::SerializeStruct for &mut Fields<C> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.0.push((name, C::collect(value)?));
        Ok(())
    }

    fn end(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What the serializer says to anything but a struct.
fn not_a_struct<T>() -> Result<T, serde_json::Error> {
    Err(ser::Error::custom("only a struct has fields"))
}

/// Refuses the serde data types that take no more than their own value.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), serde_json::Error> { not_a_struct() })*
    };
}

impl<C: Collect> ser::Serializer for &mut Fields<C> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeStruct = Self;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), serde_json::Error> {
        not_a_struct()
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), serde_json::Error> {
        not_a_struct()
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), serde_json::Error> {
        not_a_struct()
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, serde_json::Error> {
        not_a_struct()
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, serde_json::Error> {
        not_a_struct()
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, serde_json::Error> {
        not_a_struct()
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, serde_json::Error> {
        not_a_struct()
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, serde_json::Error> {
        not_a_struct()
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, serde_json::Error> {
        not_a_struct()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Action, Change};

    #[test]
    fn fields_are_the_json_form_in_declaration_order() {
        let entry = AuditEntry::builder(Action::Update)
            .tenant("acme")
            .changes(vec![Change::new("host", "a".into(), "b".into())])
            .metadata("region", "eu")
            .build();
        let json = serde_json::to_value(&entry).unwrap();
        let fields = entry.fields();
        assert_eq!(fields.len(), json.as_object().unwrap().len());
        for (name, value) in &fields {
            assert_eq!(&json[*name], value, "{name}");
        }
        let text = serde_json::to_string(&entry).unwrap();
        let mut at = 0;
        for (name, _) in &fields {
            let found = text[at..].find(&format!("\"{name}\":")).unwrap();
            at += found;
        }
        assert_eq!(
            AuditEntry::field_names(),
            fields.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
    }
}
