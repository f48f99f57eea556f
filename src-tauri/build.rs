// The bundled UI (ui/dist) is compiled into the binary: it must be built first.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist/index.html");
    if !dist.is_file() {
        panic!(
            "the desktop UI is not built ({} is missing): run `scripts/desktop-deps && npm --prefix ui run build` (scripts/test does)",
            dist.display()
        );
    }
    tauri_build::build()
}
