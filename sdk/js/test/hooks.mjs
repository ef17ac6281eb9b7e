// Module resolution hook (see register.mjs).
const STUB = new URL('./host-stub.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (/^(kiln|wasi):/.test(specifier)) return { url: STUB, shortCircuit: true };
  return next(specifier, context);
}
