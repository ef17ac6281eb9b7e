// Lets Node load kiln.js outside a component: the contract's and WASI's interfaces
// resolve to host-stub.mjs. Run from the repository root:
//   node --import ./sdk/js/test/register.mjs --test sdk/js/test/kiln.test.mjs
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
