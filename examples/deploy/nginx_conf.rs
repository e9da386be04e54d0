//! Renders `examples/deploy/nginx.conf` (the shipped template) for a local cluster: its
//! prefix (pid, logs, temp files), listen address and one `server` line per instance in
//! each upstream block. Shared by the end-to-end test and the load tool (`#[path]`), so
//! both run exactly the configuration that ships.

use std::path::Path;

/// The template, from the source tree.
pub fn template() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/nginx.conf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `template` with `prefix`, `listen` (`host:port`) and `upstreams` (instance ports on
/// 127.0.0.1) filled in.
pub fn render(template: &str, prefix: &Path, listen: &str, upstreams: &[u16]) -> String {
    const START: &str = "# UPSTREAM SERVERS\n";
    const END: &str = "# END UPSTREAM SERVERS\n";
    let servers: String =
        upstreams.iter().map(|p| format!("        server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;\n")).collect();
    let (mut out, mut rest) = (String::new(), template);
    while let Some(start) = rest.find(START) {
        let end = rest[start..].find(END).expect("the template closes each upstream block") + start;
        out.push_str(&rest[..start]);
        out.push_str(&servers);
        rest = &rest[end + END.len()..];
    }
    out.push_str(rest);
    assert!(out.contains(&servers), "the template has upstream blocks");
    out.replace("__PREFIX__", prefix.to_str().expect("UTF-8 path")).replace("__LISTEN__", listen)
}
