// napi-build sets the linker flags a node-api addon needs (symbols resolved by Node at load time).
fn main() {
    napi_build::setup();
}
