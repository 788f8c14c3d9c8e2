//! `Cx`, the context every hook gets: the box (run, sudo, files), the host's logger, role
//! options, cancellation, and the parent role (`sup()`) and most derived role (`this()`).

use crate::abi::{call_host, call_role, Answer, HostV1, RawRole};
use crate::error::{Result, RoleError};
use crate::proto::{CmdOutput, HostInfo, Level, ServiceRequest};
use crate::role::{base_dispatch, Caller, Hooks};
use serde::de::DeserializeOwned;

/// The context of one hook call. Valid only during the call.
pub struct Cx<'a> {
    host: &'a HostV1,
    parent: Option<RawRole>,
    role: &'a str,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(host: &'a HostV1, parent: Option<RawRole>, role: &'a str) -> Self {
        Self { host, parent, role }
    }

    fn service<T: DeserializeOwned>(&self, request: &ServiceRequest) -> Result<T> {
        let bytes = serde_json::to_vec(request)?;
        match call_host(self.host, &bytes, request.name()) {
            Answer::Ok(out) => serde_json::from_slice(&out).map_err(RoleError::from),
            Answer::Err(e) => Err(e),
            Answer::Unknown => Err(self.missing_service(request.name())),
        }
    }

    /// The error for a service this host does not offer, naming both plugin-api versions.
    fn missing_service(&self, name: &str) -> RoleError {
        let host = match self.host() {
            Ok(info) => format!("cgcloud-plugin-api {}", info.api),
            Err(_) => "an older cgcloud-plugin-api".to_string(),
        };
        RoleError::host(format!(
            "this cgcloud was built with {host} and does not offer the `{name}` service, which this plugin's \
             cgcloud-plugin-api {} has; update cgcloud to a release built with cgcloud-plugin-api {} or later",
            crate::API_VERSION,
            crate::API_VERSION
        ))
    }

    /// The plugin's hello: which cgcloud-plugin-api the host was built with and which
    /// services it offers. Every 1.x host answers it.
    pub fn host(&self) -> Result<HostInfo> {
        let request = ServiceRequest::Hello {
            api: crate::API_VERSION.into(),
        };
        let bytes = serde_json::to_vec(&request)?;
        match call_host(self.host, &bytes, request.name()) {
            Answer::Ok(out) => serde_json::from_slice(&out).map_err(RoleError::from),
            Answer::Err(e) => Err(e),
            Answer::Unknown => Err(RoleError::host(
                "this cgcloud does not answer the plugin's hello; it predates cgcloud-plugin-api 1.0",
            )),
        }
    }

    fn checked(command: &str, out: CmdOutput) -> Result<CmdOutput> {
        if out.status == 0 {
            Ok(out)
        } else {
            Err(RoleError::command_failed(command, out.status, &out.stderr))
        }
    }

    /// Runs `command` on the box as the admin account; a non-zero exit is an error naming
    /// the command, its status and its stderr.
    pub fn run(&self, command: &str) -> Result<CmdOutput> {
        Self::checked(command, self.run_unchecked(command)?)
    }

    /// Runs `command` and returns its output whatever its exit status.
    pub fn run_unchecked(&self, command: &str) -> Result<CmdOutput> {
        self.service(&ServiceRequest::Run {
            command: command.into(),
        })
    }

    /// Runs `command` with sudo as root; a non-zero exit is an error.
    pub fn sudo(&self, command: &str) -> Result<CmdOutput> {
        let out = self.service(&ServiceRequest::Sudo {
            command: command.into(),
            user: None,
        })?;
        Self::checked(command, out)
    }

    /// Runs `command` with sudo as `user`; a non-zero exit is an error.
    pub fn sudo_as(&self, user: &str, command: &str) -> Result<CmdOutput> {
        let out = self.service(&ServiceRequest::Sudo {
            command: command.into(),
            user: Some(user.into()),
        })?;
        Self::checked(command, out)
    }

    /// Writes `data` to `path` on the box with `mode`, as the admin account.
    pub fn put_file(&self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        self.put(path, data, mode, false)
    }

    /// Writes `data` to `path` on the box with `mode`, as root.
    pub fn sudo_put_file(&self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        self.put(path, data, mode, true)
    }

    fn put(&self, path: &str, data: &[u8], mode: u32, sudo: bool) -> Result<()> {
        self.service(&ServiceRequest::PutFile {
            path: path.into(),
            data: data.to_vec(),
            mode,
            sudo,
        })
    }

    /// Reads `path` from the box.
    pub fn get_file(&self, path: &str) -> Result<Vec<u8>> {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(with = "crate::proto::b64")]
            data: Vec<u8>,
        }
        let file: File = self.service(&ServiceRequest::GetFile {
            path: path.into(),
            sudo: false,
        })?;
        Ok(file.data)
    }

    /// Sends a line to the host's logger. Never fails: a logger problem is not the role's.
    pub fn log(&self, level: Level, message: &str) {
        let _ = self.service::<()>(&ServiceRequest::Log {
            level,
            message: message.into(),
        });
    }

    /// `log(Level::Info, message)`.
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// The value of role option `name` (given with `-O`, in the config, or its default).
    pub fn option(&self, name: &str) -> Result<Option<String>> {
        self.service(&ServiceRequest::Option { name: name.into() })
    }

    /// Whether the host asked this hook to stop. Service calls fail with a `Cancelled` error
    /// by themselves once it did; long local work should check this.
    pub fn is_cancelled(&self) -> bool {
        self.service::<bool>(&ServiceRequest::Cancelled)
            .unwrap_or(true)
    }

    /// The name of the role the box is being made for (the most derived one).
    pub fn role_name(&self) -> Result<String> {
        self.service(&ServiceRequest::Role)
    }

    /// The name of the role whose hook is running (may be a parent of `role_name()`).
    pub fn current_role(&self) -> &str {
        self.role
    }

    /// The parent role's hooks (`super`). At the root of the chain, the base defaults.
    pub fn sup(&self) -> Hooks<SuperCaller<'_, 'a>> {
        Hooks(SuperCaller { cx: self })
    }

    /// The most derived role's hooks (virtual dispatch, like `self` in a template method).
    pub fn this(&self) -> Hooks<LeafCaller<'_, 'a>> {
        Hooks(LeafCaller { cx: self })
    }

    /// The same context without a parent, for base defaults.
    fn rootless(&self) -> Cx<'a> {
        Cx {
            host: self.host,
            parent: None,
            role: self.role,
        }
    }
}

/// Calls the parent role, falling back to the base default (also when the parent was built
/// against an older plugin-api that lacks the hook).
pub struct SuperCaller<'c, 'a> {
    cx: &'c Cx<'a>,
}

impl Caller for SuperCaller<'_, '_> {
    fn call_json(&self, hook: &str, args: Vec<u8>) -> Result<Vec<u8>> {
        if let Some(parent) = self.cx.parent {
            match call_role(parent, hook, &args, self.cx.host) {
                Answer::Ok(v) => return Ok(v),
                Answer::Err(e) => return Err(e),
                Answer::Unknown => {}
            }
        }
        base_default(&self.cx.rootless(), hook, &args)
    }
}

pub(crate) fn base_default(cx: &Cx<'_>, hook: &str, args: &[u8]) -> Result<Vec<u8>> {
    base_dispatch(cx, hook, args).unwrap_or_else(|| {
        Err(RoleError::failed(format!(
            "no role in the chain answers hook `{hook}` and it has no default"
        )))
    })
}

/// Calls the most derived role through the host.
pub struct LeafCaller<'c, 'a> {
    cx: &'c Cx<'a>,
}

impl Caller for LeafCaller<'_, '_> {
    fn call_json(&self, hook: &str, args: Vec<u8>) -> Result<Vec<u8>> {
        let args = String::from_utf8(args).map_err(|e| RoleError::failed(e.to_string()))?;
        let request = ServiceRequest::Leaf {
            hook: hook.into(),
            args,
        };
        let bytes = serde_json::to_vec(&request)?;
        match call_host(self.cx.host, &bytes, "leaf") {
            Answer::Ok(v) => Ok(v),
            Answer::Err(e) => Err(e),
            Answer::Unknown => Err(self.cx.missing_service("leaf")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{with_host, ServiceHandler, STATUS_OK, STATUS_UNKNOWN};

    /// A host of another 1.x that offers only `run` and the hello.
    struct OtherHost;

    impl ServiceHandler for OtherHost {
        fn handle(&self, request: &[u8]) -> (u32, Vec<u8>) {
            let request: serde_json::Value = serde_json::from_slice(request).expect("JSON");
            match request["service"].as_str() {
                Some("hello") => {
                    assert_eq!(
                        request["api"],
                        crate::API_VERSION,
                        "the plugin says its version"
                    );
                    let info = HostInfo {
                        api: "1.0.7".into(),
                        abi: 1,
                        services: vec!["run".into(), "hello".into()],
                    };
                    (STATUS_OK, serde_json::to_vec(&info).expect("JSON"))
                }
                _ => (STATUS_UNKNOWN, Vec::new()),
            }
        }
    }

    #[test]
    fn the_hello_tells_the_host_version_and_a_missing_service_names_both_versions() {
        with_host(&OtherHost, |host| {
            let cx = Cx::new(host, None, "some-box");
            let info = cx.host().expect("hello answered");
            assert_eq!(info.api, "1.0.7");
            assert!(info.offers("run") && !info.offers("sudo"));
            let e = cx.sudo("true").expect_err("no sudo service");
            let api = crate::API_VERSION;
            assert_eq!(
                e.message,
                format!(
                    "this cgcloud was built with cgcloud-plugin-api 1.0.7 and does not offer the `sudo` service, \
                     which this plugin's cgcloud-plugin-api {api} has; update cgcloud to a release built with \
                     cgcloud-plugin-api {api} or later"
                )
            );
        });
    }

    #[test]
    fn this_host_answers_the_hello_with_every_service_it_offers() {
        let info = HostInfo::this_build();
        assert_eq!(info.api, crate::API_VERSION);
        for service in [
            "run", "sudo", "put_file", "get_file", "log", "option", "hello",
        ] {
            assert!(info.offers(service), "{service}");
        }
    }
}
