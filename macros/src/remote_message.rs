//! `#[derive(RemoteMessage)]`: implements `ractor_otp::cluster::RemoteMessage`.
//!
//! Every misuse becomes a `syn::Error` spanned on the offending token; the
//! expansion never panics. Independent errors (a union, generics, bad
//! attributes, a field holding ractor's `RpcReplyPort`) are combined so one
//! build reports all of them.

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::{
    Attribute, Data, DeriveInput, Error, Expr, ExprLit, Field, GenericArgument, Lit, LitStr, Meta,
    Path, PathArguments, ReturnType, Type, TypeParamBound,
};

/// The attribute this derive reads.
const ATTR: &str = "remote";

/// The keys `#[remote(...)]` accepts, for the unknown-key error.
const ACCEPTED_KEYS: &str = "`tag = \"...\"` (the type's name on the wire) and \
     `crate = \"...\"` (the path to `ractor_otp` when it is re-exported under another name)";

const GENERIC: &str = "RemoteMessage cannot be derived for a generic type: its tag must name \
     one concrete type on the wire; derive it on a concrete type or implement \
     `ractor_otp::cluster::RemoteMessage` by hand with a tag per instantiation";

const UNION: &str = "RemoteMessage cannot be derived for a union: a remote message is \
     serialized with serde, which does not support unions; use a struct or an enum";

const BARE: &str = "`#[remote]` needs arguments: write `#[remote(tag = \"...\")]` to set the \
     tag or `#[remote(crate = \"...\")]` to set the path to `ractor_otp`, or remove the \
     attribute to use the type's name as the tag";

const NAME_VALUE: &str = "`#[remote = ...]` is not supported: write `#[remote(tag = \"...\")]` \
     to set the tag";

const TAG_MISSING: &str = "`tag` needs a value: write `tag = \"...\"`, e.g. \
     `tag = \"shop.Order.v2\"`, or remove `tag` to use the type's name";

const CRATE_MISSING: &str = "`crate` needs a value: write `crate = \"...\"` with the path to \
     `ractor_otp`, e.g. `crate = \"my_framework::otp\"`";

const TAG_NOT_STRING: &str = "`tag` must be a string literal, e.g. `tag = \"shop.Order.v2\"`";

const CRATE_NOT_PATH: &str = "`crate` must be a string literal holding a path to `ractor_otp`, \
     e.g. `crate = \"ractor_otp\"` or `crate = \"my_framework::otp\"`";

const RPC_REPLY_PORT: &str = "ractor's `RpcReplyPort` cannot cross the network: it is an \
     in-process channel and does not serialize. Use `ractor_otp::cluster::RemoteReply<T>` \
     instead: call the actor with `RemoteRef::call` and answer with `reply.send(value)`, \
     as with `RpcReplyPort`";

/// What the `#[remote(...)]` attributes on the type set.
#[derive(Default)]
struct Options {
    tag: Option<LitStr>,
    krate: Option<Path>,
}

/// Expands the derive, or returns every error found.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();

    if let Data::Union(data) = &input.data {
        errors.push(Error::new(data.union_token.span, UNION));
    }
    if !input.generics.params.is_empty() {
        errors.push(Error::new_spanned(&input.generics, GENERIC));
    }
    reject_misplaced_attrs(input, &mut errors);
    for field in serialized_fields(input) {
        reject_rpc_reply_ports(&field.ty, &mut errors);
    }

    let mut options = Options::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident(ATTR)) {
        if let Err(e) = parse_attr(attr, &mut options) {
            errors.push(e);
        }
    }
    errors.finish()?;

    let ident = &input.ident;
    let tag = match options.tag {
        Some(tag) => tag,
        // `r#type` is named `type` on the wire.
        None => LitStr::new(&ident.unraw().to_string(), ident.span()),
    };
    let krate = match options.krate {
        Some(path) => path.into_token_stream(),
        None => quote!(::ractor_otp),
    };
    // Spanned on the type's name: if the type lacks a bound the trait
    // requires (e.g. `Serialize`), the error points at the type.
    let trait_path = quote_spanned!(ident.span()=> #krate::cluster::RemoteMessage);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #trait_path for #ident #ty_generics #where_clause {
            const TAG: &'static str = #tag;
        }
    })
}

/// Parses one `#[remote...]` attribute into `options`.
fn parse_attr(attr: &Attribute, options: &mut Options) -> syn::Result<()> {
    let list = match &attr.meta {
        Meta::Path(_) => return Err(Error::new_spanned(attr, BARE)),
        Meta::NameValue(_) => return Err(Error::new_spanned(attr, NAME_VALUE)),
        Meta::List(list) => list,
    };
    if list.tokens.is_empty() {
        return Err(Error::new_spanned(attr, BARE));
    }
    list.parse_nested_meta(|meta| {
        if meta.path.is_ident("tag") {
            if let Some(first) = &options.tag {
                return Err(meta.error(format!(
                    "`tag` is given twice (first as {:?}): keep a single `tag = \"...\"`",
                    first.value()
                )));
            }
            let tag = string_value(&meta, TAG_MISSING, TAG_NOT_STRING)?;
            validate_tag(&tag)?;
            options.tag = Some(tag);
        } else if meta.path.is_ident("crate") {
            if options.krate.is_some() {
                return Err(meta.error("`crate` is given twice: keep a single `crate = \"...\"`"));
            }
            let lit = string_value(&meta, CRATE_MISSING, CRATE_NOT_PATH)?;
            let path = lit
                .parse::<Path>()
                .map_err(|_| Error::new(lit.span(), CRATE_NOT_PATH))?;
            options.krate = Some(path);
        } else {
            return Err(Error::new_spanned(
                &meta.path,
                format!(
                    "unknown key `{}` in `#[remote(...)]`: the accepted keys are {ACCEPTED_KEYS}",
                    path_to_string(&meta.path)
                ),
            ));
        }
        Ok(())
    })
}

/// Reads the `= "..."` after a key: `missing` is the error when there is
/// no value, `not_string` when the value is not a string literal.
fn string_value(meta: &ParseNestedMeta, missing: &str, not_string: &str) -> syn::Result<LitStr> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        return Err(meta.error(missing));
    }
    let value = meta.value()?;
    let expr: Expr = value
        .parse()
        .map_err(|e| Error::new(e.span(), not_string))?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        other => Err(Error::new_spanned(other, not_string)),
    }
}

/// A tag is compared byte for byte and shows up in logs and errors: it
/// must be non-empty and free of whitespace and control characters.
fn validate_tag(tag: &LitStr) -> syn::Result<()> {
    let value = tag.value();
    if value.is_empty() {
        return Err(Error::new(
            tag.span(),
            "the tag is empty: give the type a name on the wire, e.g. \
             `tag = \"shop.Order.v2\"`, or remove `tag` to use the type's name",
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::new(
            tag.span(),
            format!(
                "the tag {value:?} contains whitespace or a control character ({c:?}): \
                 use a name without them, e.g. `tag = \"shop.Order.v2\"`"
            ),
        ));
    }
    Ok(())
}

/// `#[remote(...)]` only configures the type: on a field or a variant it
/// would be silently ignored, so it is an error.
fn reject_misplaced_attrs(input: &DeriveInput, errors: &mut Errors) {
    fn check(attrs: &[Attribute], place: &str, errors: &mut Errors) {
        for attr in attrs.iter().filter(|a| a.path().is_ident(ATTR)) {
            errors.push(Error::new_spanned(
                attr,
                format!(
                    "`#[remote(...)]` is not supported on a {place}: put it on the type itself"
                ),
            ));
        }
    }
    if let Data::Enum(data) = &input.data {
        for variant in &data.variants {
            check(&variant.attrs, "variant", errors);
        }
    }
    for field in fields(input) {
        check(&field.attrs, "field", errors);
    }
}

/// Every field of the struct, of every variant of the enum, or of the
/// union.
fn fields(input: &DeriveInput) -> Box<dyn Iterator<Item = &Field> + '_> {
    match &input.data {
        Data::Struct(data) => Box::new(data.fields.iter()),
        Data::Enum(data) => Box::new(data.variants.iter().flat_map(|v| v.fields.iter())),
        Data::Union(data) => Box::new(data.fields.named.iter()),
    }
}

/// The fields serde puts on the wire: all but those of a variant or a
/// field marked `#[serde(skip)]` (or both `skip_serializing` and
/// `skip_deserializing`), which may hold local-only values.
fn serialized_fields(input: &DeriveInput) -> Vec<&Field> {
    match &input.data {
        Data::Enum(data) => data
            .variants
            .iter()
            .filter(|v| !serde_skips(&v.attrs))
            .flat_map(|v| v.fields.iter())
            .filter(|f| !serde_skips(&f.attrs))
            .collect(),
        _ => fields(input).filter(|f| !serde_skips(&f.attrs)).collect(),
    }
}

/// Whether `#[serde(...)]` among `attrs` keeps the item off the wire both
/// ways. Reads only the bare flags at the top level of the attribute;
/// anything malformed is serde's to report.
fn serde_skips(attrs: &[Attribute]) -> bool {
    let mut flags = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let Meta::List(list) = &attr.meta else {
            continue;
        };
        let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            let TokenTree::Ident(ident) = token else {
                continue;
            };
            let bare = match tokens.get(i + 1) {
                None => true,
                Some(TokenTree::Punct(p)) => p.as_char() == ',',
                Some(_) => false,
            };
            if bare {
                flags.push(ident.to_string());
            }
        }
    }
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    has("skip") || (has("skip_serializing") && has("skip_deserializing"))
}

/// A field holding ractor's `RpcReplyPort` anywhere in its type (`Option`,
/// tuples, generic arguments...) is the usual mistake of a message written
/// for local calls first: without this check, the user only gets serde's
/// "`RpcReplyPort` does not implement `Serialize`", which does not say what
/// to use instead. Matched by the last path segment, so `ractor::RpcReplyPort`,
/// `ractor::port::RpcReplyPort` and an imported `RpcReplyPort` are all found
/// (a type alias of it is not: macros cannot see through aliases).
fn reject_rpc_reply_ports(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                reject_rpc_reply_ports(&qself.ty, errors);
            }
            if path
                .path
                .segments
                .last()
                .is_some_and(|last| last.ident == "RpcReplyPort")
            {
                errors.push(Error::new_spanned(path, RPC_REPLY_PORT));
                return;
            }
            for segment in &path.path.segments {
                reject_in_arguments(&segment.arguments, errors);
            }
        }
        Type::Array(array) => reject_rpc_reply_ports(&array.elem, errors),
        Type::Slice(slice) => reject_rpc_reply_ports(&slice.elem, errors),
        Type::Group(group) => reject_rpc_reply_ports(&group.elem, errors),
        Type::Paren(paren) => reject_rpc_reply_ports(&paren.elem, errors),
        Type::Ptr(ptr) => reject_rpc_reply_ports(&ptr.elem, errors),
        Type::Reference(reference) => reject_rpc_reply_ports(&reference.elem, errors),
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                reject_rpc_reply_ports(elem, errors);
            }
        }
        Type::TraitObject(object) => reject_in_bounds(object.bounds.iter(), errors),
        Type::ImplTrait(object) => reject_in_bounds(object.bounds.iter(), errors),
        // Function pointers, macros, `!`, `_`: nothing that holds a port by
        // value (and nothing a message can serialize anyway).
        _ => {}
    }
}

fn reject_in_arguments(arguments: &PathArguments, errors: &mut Errors) {
    match arguments {
        PathArguments::AngleBracketed(args) => {
            for arg in &args.args {
                if let GenericArgument::Type(ty) = arg {
                    reject_rpc_reply_ports(ty, errors);
                }
            }
        }
        PathArguments::Parenthesized(args) => {
            for input in &args.inputs {
                reject_rpc_reply_ports(input, errors);
            }
            if let ReturnType::Type(_, output) = &args.output {
                reject_rpc_reply_ports(output, errors);
            }
        }
        PathArguments::None => {}
    }
}

fn reject_in_bounds<'a>(bounds: impl Iterator<Item = &'a TypeParamBound>, errors: &mut Errors) {
    for bound in bounds {
        if let TypeParamBound::Trait(bound) = bound {
            for segment in &bound.path.segments {
                reject_in_arguments(&segment.arguments, errors);
            }
        }
    }
}

/// `a::b` for an error message (`ToTokens` would print `a :: b`).
fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|s| s.ident.unraw().to_string())
        .collect();
    let joined = segments.join("::");
    if path.leading_colon.is_some() {
        format!("::{joined}")
    } else {
        joined
    }
}

/// Collects independent errors so they are all reported at once.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(errors) => Err(errors),
            None => Ok(()),
        }
    }
}
