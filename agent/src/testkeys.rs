//! Real public keys for tests (made with `ssh-keygen -t ed25519`; the private halves are gone).

pub const K1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPYe5EjA90eBhXVCmc2knswjsuRVOSlKWuLZH3BrPWp4 k1";
pub const K2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINCLxsGEO7nEn14ASz8NtlLibm4+k1WbT4hCyj9t/JDm k2";
pub const K3: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJDgF8DmOrvtwnvChzsl/ybScEdNYa3yXIEienP5GyiA k3";
