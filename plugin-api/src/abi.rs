//! The frozen ABI v1: the only place in plugin-api with `unsafe`.
//!
//! abi_stable gives the library header, its C-ABI self-test and the layout check of the root
//! module. The root module and the two vtables below never change within ABI major 1: every
//! hook and every host service is a *name* plus JSON bytes, so adding a hook, a service or a
//! field changes no layout. That is what lets a plugin built against plugin-api 1.0 run in a
//! host built with a later 1.x, and the other way round (a golden test pins the layouts).
//!
//! The root module's version string is the ABI's (`1.0.0` for all of ABI v1), not the crate's:
//! abi_stable refuses a library whose version string has a lower minor than the host's.
//!
//! Ownership: a role instance is created by its plugin and freed through its vtable's `drop`;
//! output buffers are `RVec<u8>`, which carry their own deallocator, so each side frees memory
//! with the allocator that made it.

use crate::error::{ErrorKind, RoleError};
use crate::export::{PluginDef, RoleDef};
use crate::role::Role;
use abi_stable::library::{CheckTypeLayout, LibHeader, RootModule, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::RVec;
use abi_stable::StableAbi;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The ABI major this crate speaks. A plugin speaking another major is refused at load.
pub const ABI_MAJOR: u32 = 1;
/// The version string in the root module: the ABI's, fixed for all of ABI v1.
pub const ABI_VERSION: &str = "1.0.0";
/// The name of the plugin's entry symbol (abi_stable's library header).
pub const ENTRY_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
/// The prefix of the build-info string every plugin carries, read before `dlopen`.
pub const BUILD_INFO_PREFIX: &str = "CGCLOUD_PLUGIN_BUILD;";

/// The call succeeded; the output holds the JSON result.
pub const STATUS_OK: u32 = 0;
/// The call failed; the output holds a JSON [`RoleError`].
pub const STATUS_ERR: u32 = 1;
/// The call panicked; the output holds the panic message as UTF-8.
pub const STATUS_PANICKED: u32 = 2;
/// The callee does not know the hook or service; the output is empty.
pub const STATUS_UNKNOWN: u32 = 3;
/// The host cancelled the call.
pub const STATUS_CANCELLED: u32 = 4;

pub use abi_stable::library::LibHeader as Header;

/// Borrowed bytes, valid for the duration of one call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    fn of(data: &[u8]) -> Self {
        Self {
            ptr: data.as_ptr(),
            len: data.len(),
        }
    }

    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a` (or `len` must be 0).
    unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees `ptr` points to `len` live bytes.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Host services for the duration of one hook call.
#[repr(C)]
#[derive(StableAbi)]
pub struct HostV1 {
    pub struct_size: usize,
    pub ctx: *const c_void,
    /// `request` is a JSON `ServiceRequest`; the answer goes to `out`; returns a status.
    pub call: unsafe extern "C" fn(ctx: *const c_void, request: Bytes, out: *mut RVec<u8>) -> u32,
}

/// The vtable of a role instance.
#[repr(C)]
#[derive(StableAbi)]
pub struct RoleVTableV1 {
    pub struct_size: usize,
    /// Runs `hook` with JSON `args`; the answer goes to `out`; returns a status.
    pub call: unsafe extern "C" fn(
        this: *const c_void,
        hook: Bytes,
        args: Bytes,
        host: *const HostV1,
        out: *mut RVec<u8>,
    ) -> u32,
    pub drop: unsafe extern "C" fn(this: *mut c_void),
}

/// A role instance as it crosses the boundary. Not owning: see [`OwnedRole`].
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct RawRole {
    pub this: *mut c_void,
    pub vtable: *const RoleVTableV1,
}

impl RawRole {
    const NONE: RawRole = RawRole {
        this: std::ptr::null_mut(),
        vtable: std::ptr::null(),
    };
    fn is_none(&self) -> bool {
        self.vtable.is_null()
    }
}

// SAFETY: a RawRole points to a `Guarded` role, whose `Role` is `Send + Sync`, and to a static
// vtable; nothing in it is tied to a thread.
unsafe impl Send for RawRole {}
// SAFETY: as above; all calls through it take `&self` on a `Sync` role.
unsafe impl Sync for RawRole {}

/// The root module every plugin exports (ABI v1, frozen).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// `ABI_MAJOR` of the plugin's build.
    pub abi_major: u32,
    /// 1 if the plugin was built with `panic = "unwind"`.
    pub panic_unwind: u8,
    /// The JSON `Manifest`.
    pub manifest: extern "C" fn() -> RVec<u8>,
    /// Creates role `role`, with `parent` (vtable null: none), into `out`; on failure writes
    /// a JSON [`RoleError`] to `err` and returns its status.
    #[sabi(last_prefix_field)]
    pub instantiate: unsafe extern "C" fn(
        role: Bytes,
        parent: RawRole,
        out: *mut RawRole,
        err: *mut RVec<u8>,
    ) -> u32,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "cgcloud_plugin";
    const NAME: &'static str = "cgcloud_plugin";
    const VERSION_STRINGS: abi_stable::sabi_types::VersionStrings =
        abi_stable::sabi_types::VersionStrings::new(ABI_VERSION);
}

// ---------------------------------------------------------------------------------------------
// Plugin side: exporting a plugin and its roles.

/// Implemented by `export_plugin!` for a hidden type in the plugin crate.
pub trait PluginEntry: 'static {
    fn definition() -> &'static PluginDef;
}

/// The library header `export_plugin!` exports under [`ENTRY_SYMBOL`].
pub const fn lib_header<P: PluginEntry>() -> LibHeader {
    // SAFETY: `root_loader::<P>` returns a `PluginModRef` erased by abi_stable's own
    // `__call_root_module_loader`, which is what `from_constructor::<PluginModRef>` requires.
    unsafe { LibHeader::from_constructor::<PluginModRef>(root_loader::<P>, CheckTypeLayout::Yes) }
}

extern "C" fn root_loader<P: PluginEntry>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(make_module::<P>)
}

fn make_module<P: PluginEntry>() -> PluginModRef {
    install_panic_hook();
    PluginMod {
        abi_major: ABI_MAJOR,
        panic_unwind: u8::from(cfg!(panic = "unwind")),
        manifest: manifest_of::<P>,
        instantiate: instantiate_of::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn manifest_of<P: PluginEntry>() -> RVec<u8> {
    let json = catch_unwind(|| serde_json::to_vec(&P::definition().manifest()).unwrap_or_default());
    RVec::from(json.unwrap_or_default())
}

unsafe extern "C" fn instantiate_of<P: PluginEntry>(
    role: Bytes,
    parent: RawRole,
    out: *mut RawRole,
    err: *mut RVec<u8>,
) -> u32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes the role name bytes, valid for this call.
        let name = String::from_utf8_lossy(unsafe { role.as_slice() }).into_owned();
        let def = P::definition();
        match def.roles.iter().find(|r| r.name == name) {
            Some(role_def) => {
                let parent = if parent.is_none() { None } else { Some(parent) };
                // SAFETY: the host keeps `parent` alive as long as the child (see
                // `instantiate_plugin`).
                Ok(unsafe { instantiate_role(def.name, role_def, parent) })
            }
            None => Err(RoleError::failed(format!(
                "plugin `{}` has no role `{name}`",
                def.name
            ))),
        }
    }));
    let (status, body) = match result {
        Ok(Ok(raw)) => {
            // SAFETY: `out` points to a RawRole slot owned by the host for this call.
            unsafe { out.write(raw) };
            return STATUS_OK;
        }
        Ok(Err(e)) => (STATUS_ERR, serde_json::to_vec(&e).unwrap_or_default()),
        Err(payload) => (STATUS_PANICKED, panic_message(&*payload).into_bytes()),
    };
    // SAFETY: `err` points to an initialized RVec owned by the host for this call.
    unsafe { *err = RVec::from(body) };
    status
}

/// Wraps a role into a `RawRole` whose hooks run under `catch_unwind`. Built-in roles go
/// through here too, so they are called exactly like plugin roles.
///
/// # Safety
/// The new role keeps `parent` as a raw pointer and calls it from its hooks: `parent` must
/// stay alive (not dropped) for as long as the returned role is called.
pub unsafe fn instantiate_role(
    plugin: &'static str,
    def: &RoleDef,
    parent: Option<RawRole>,
) -> RawRole {
    let guarded = Box::new(Guarded {
        role: (def.new)(),
        parent,
        name: def.name.clone(),
        plugin,
    });
    RawRole {
        this: Box::into_raw(guarded).cast::<c_void>(),
        vtable: &ROLE_VTABLE,
    }
}

struct Guarded {
    role: Box<dyn Role>,
    parent: Option<RawRole>,
    name: String,
    plugin: &'static str,
}

static ROLE_VTABLE: RoleVTableV1 = RoleVTableV1 {
    struct_size: std::mem::size_of::<RoleVTableV1>(),
    call: guarded_call,
    drop: guarded_drop,
};

thread_local! {
    static IN_HOOK: Cell<u32> = const { Cell::new(0) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

unsafe extern "C" fn guarded_call(
    this: *const c_void,
    hook: Bytes,
    args: Bytes,
    host: *const HostV1,
    out: *mut RVec<u8>,
) -> u32 {
    IN_HOOK.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `this` was made by `instantiate_role` from a `Box<Guarded>` and is alive
        // until the vtable's `drop`; the host never calls a dropped role.
        let guarded = unsafe { &*this.cast::<Guarded>() };
        // SAFETY: hook and args are borrowed from the caller for this call.
        let (hook, args) = unsafe { (hook.as_slice(), args.as_slice()) };
        // SAFETY: the caller passes a HostV1 that outlives this call.
        let host = unsafe { &*host };
        let hook = std::str::from_utf8(hook).unwrap_or("");
        let cx = crate::cx::Cx::new(host, guarded.parent, &guarded.name);
        crate::role::dispatch(&*guarded.role, &cx, hook, args)
            .map(|r| r.map_err(|e| (e, guarded.plugin)))
    }));
    IN_HOOK.with(|c| c.set(c.get().saturating_sub(1)));
    let (status, body) = match result {
        Ok(None) => (STATUS_UNKNOWN, Vec::new()),
        Ok(Some(Ok(v))) => (STATUS_OK, v),
        Ok(Some(Err((e, _)))) => (STATUS_ERR, serde_json::to_vec(&e).unwrap_or_default()),
        Err(payload) => {
            let located = LAST_PANIC.with(|p| p.borrow_mut().take());
            let msg = located.unwrap_or_else(|| panic_message(&*payload));
            (STATUS_PANICKED, msg.into_bytes())
        }
    };
    // SAFETY: `out` points to an initialized RVec owned by the caller for this call.
    unsafe { *out = RVec::from(body) };
    status
}

unsafe extern "C" fn guarded_drop(this: *mut c_void) {
    // SAFETY: `this` came from `Box::into_raw` in `instantiate_role` and is dropped once.
    let boxed = unsafe { Box::from_raw(this.cast::<Guarded>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// In a plugin (its own copy of std), panics inside hooks are reported through the host
/// instead of the plugin's stderr; other panics keep the previous hook.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HOOK.with(|c| c.get()) > 0 {
                let msg = panic_message(info.payload());
                let located = match info.location() {
                    Some(l) => format!("{msg} (at {}:{})", l.file(), l.line()),
                    None => msg,
                };
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(located));
            } else {
                previous(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Calling roles and host services.

/// What a role or the host answered.
#[derive(Debug)]
pub(crate) enum Answer {
    Ok(Vec<u8>),
    Unknown,
    Err(RoleError),
}

/// Decodes a status and body. A role's panic message is passed on as is (the host names the
/// plugin, role and hook); a host service's gets `what` in front.
fn answer(status: u32, body: Vec<u8>, what: &str, from_host: bool) -> Answer {
    match status {
        STATUS_OK => Answer::Ok(body),
        STATUS_UNKNOWN => Answer::Unknown,
        STATUS_ERR => match serde_json::from_slice::<RoleError>(&body) {
            Ok(e) => Answer::Err(e),
            Err(_) => Answer::Err(RoleError::failed(
                String::from_utf8_lossy(&body).into_owned(),
            )),
        },
        STATUS_PANICKED if from_host => Answer::Err(RoleError::host(format!(
            "{what} panicked: {}",
            String::from_utf8_lossy(&body)
        ))),
        STATUS_PANICKED => Answer::Err(RoleError::panicked(String::from_utf8_lossy(&body))),
        STATUS_CANCELLED => Answer::Err(RoleError::cancelled()),
        other => Answer::Err(RoleError {
            kind: ErrorKind::Unknown,
            message: format!("{what} returned unknown status {other}"),
        }),
    }
}

/// Calls `hook` on a role that is alive for the duration of the call.
///
/// Callers guarantee liveness: plugin code only reaches parents the host keeps alive for the
/// whole call, and the host only reaches roles through [`OwnedRole`].
pub(crate) fn call_role(role: RawRole, hook: &str, args: &[u8], host: &HostV1) -> Answer {
    if role.is_none() {
        return Answer::Unknown;
    }
    let mut out = RVec::new();
    // SAFETY: `role` is alive (see above); its vtable is a static of the library that made it,
    // and libraries are never unloaded. The byte slices and `host` outlive the call.
    let status = unsafe {
        ((*role.vtable).call)(
            role.this,
            Bytes::of(hook.as_bytes()),
            Bytes::of(args),
            host,
            &mut out,
        )
    };
    answer(status, out.into_vec(), &format!("hook `{hook}`"), false)
}

/// Calls a host service.
pub(crate) fn call_host(host: &HostV1, request: &[u8], service: &str) -> Answer {
    let mut out = RVec::new();
    // SAFETY: `host` is the HostV1 passed to the running hook, valid for the whole call; its
    // `ctx` is the host's and `call` knows how to read it.
    let status = unsafe { (host.call)(host.ctx, Bytes::of(request), &mut out) };
    answer(
        status,
        out.into_vec(),
        &format!("host service `{service}`"),
        true,
    )
}

/// A role instance owned by the host; dropping it frees it inside the library that made it.
pub struct OwnedRole(RawRole);

impl OwnedRole {
    /// Takes ownership of a role returned by `instantiate`.
    ///
    /// # Safety
    /// `raw` must come from a plugin's `instantiate` (or [`instantiate_role`]) and must not
    /// be owned by anything else.
    pub unsafe fn from_raw(raw: RawRole) -> Self {
        Self(raw)
    }
    /// A non-owning copy, to hand to a child role as its parent.
    pub fn raw(&self) -> RawRole {
        self.0
    }
    pub(crate) fn call(&self, hook: &str, args: &[u8], host: &HostV1) -> Answer {
        call_role(self.0, hook, args, host)
    }
}

impl Drop for OwnedRole {
    fn drop(&mut self) {
        if !self.0.is_none() {
            // SAFETY: we own the instance (see `from_raw`) and drop it exactly once, through
            // the vtable of the library that allocated it.
            unsafe { ((*self.0.vtable).drop)(self.0.this) }
        }
    }
}

impl std::fmt::Debug for OwnedRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnedRole")
    }
}

/// Builds a built-in role (same vtable as plugin roles).
///
/// # Safety
/// The new role calls `parent` from its hooks: `parent` must outlive the returned role (drop
/// the child first).
pub unsafe fn instantiate_local(
    plugin: &'static str,
    def: &RoleDef,
    parent: Option<&OwnedRole>,
) -> OwnedRole {
    // SAFETY: the caller keeps `parent` alive as long as the child.
    let raw = unsafe { instantiate_role(plugin, def, parent.map(OwnedRole::raw)) };
    // SAFETY: `raw` was just made by `instantiate_role` and nothing else owns it.
    unsafe { OwnedRole::from_raw(raw) }
}

/// Instantiates a plugin role through the plugin's root module.
///
/// # Safety
/// The new role calls `parent` from its hooks: `parent` must outlive the returned role (drop
/// the child first).
pub unsafe fn instantiate_plugin(
    module: PluginModRef,
    role: &str,
    parent: Option<&OwnedRole>,
) -> Result<OwnedRole, RoleError> {
    let mut out = RawRole::NONE;
    let mut err = RVec::new();
    let parent = parent.map(OwnedRole::raw).unwrap_or(RawRole::NONE);
    // SAFETY: `module` was checked by abi_stable (header, version, layout); the role name bytes,
    // `out` and `err` are valid for the call; `parent` is kept alive by the caller for as long
    // as the child lives.
    let status =
        unsafe { (module.instantiate())(Bytes::of(role.as_bytes()), parent, &mut out, &mut err) };
    match answer(
        status,
        err.into_vec(),
        &format!("creating role `{role}`"),
        false,
    ) {
        Answer::Ok(_) if !out.is_none() => {
            // SAFETY: the plugin returned a fresh instance that we now own.
            Ok(unsafe { OwnedRole::from_raw(out) })
        }
        Answer::Err(e) => Err(e),
        _ => Err(RoleError::failed(format!(
            "creating role `{role}` returned no instance"
        ))),
    }
}

/// The JSON manifest of a loaded plugin.
pub fn manifest_bytes(module: PluginModRef) -> Vec<u8> {
    (module.manifest())().into_vec()
}

// ---------------------------------------------------------------------------------------------
// Host side: exposing host services to hooks.

/// Something that answers service requests (implemented in `host.rs`).
pub(crate) trait ServiceHandler: Sync {
    fn handle(&self, request: &[u8]) -> (u32, Vec<u8>);
}

/// Runs `f` with a `HostV1` that forwards to `handler`.
pub(crate) fn with_host<R>(handler: &dyn ServiceHandler, f: impl FnOnce(&HostV1) -> R) -> R {
    let fat: &&dyn ServiceHandler = &handler;
    let host = HostV1 {
        struct_size: std::mem::size_of::<HostV1>(),
        ctx: (fat as *const &dyn ServiceHandler).cast::<c_void>(),
        call: host_call,
    };
    f(&host)
}

unsafe extern "C" fn host_call(ctx: *const c_void, request: Bytes, out: *mut RVec<u8>) -> u32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `&&dyn ServiceHandler` made by `with_host`, alive during `f`,
        // which is the only time plugins can call us.
        let handler = unsafe { *ctx.cast::<&dyn ServiceHandler>() };
        // SAFETY: the request bytes are borrowed from the plugin for this call.
        handler.handle(unsafe { request.as_slice() })
    }));
    let (status, body) = match result {
        Ok(r) => r,
        Err(payload) => (STATUS_PANICKED, panic_message(&*payload).into_bytes()),
    };
    // SAFETY: `out` points to an initialized RVec owned by the plugin for this call.
    unsafe { *out = RVec::from(body) };
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden layout of ABI v1: if this fails, the ABI changed and every plugin breaks.
    #[test]
    fn abi_v1_layout_is_frozen() {
        use std::mem::{offset_of, size_of};
        let w = size_of::<usize>();
        assert_eq!(size_of::<Bytes>(), 2 * w);
        assert_eq!(size_of::<RawRole>(), 2 * w);
        assert_eq!(size_of::<HostV1>(), 3 * w);
        assert_eq!(offset_of!(HostV1, call), 2 * w);
        assert_eq!(size_of::<RoleVTableV1>(), 3 * w);
        assert_eq!(offset_of!(RoleVTableV1, call), w);
        assert_eq!(offset_of!(RoleVTableV1, drop), 2 * w);
        assert_eq!(offset_of!(PluginMod, abi_major), 0);
        assert_eq!(offset_of!(PluginMod, panic_unwind), 4);
        assert_eq!(offset_of!(PluginMod, manifest), w);
        assert_eq!(offset_of!(PluginMod, instantiate), 2 * w);
        assert_eq!(ABI_VERSION, "1.0.0");
    }

    #[test]
    fn entry_symbol_is_abi_stables_loader_name() {
        assert_eq!(ENTRY_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
