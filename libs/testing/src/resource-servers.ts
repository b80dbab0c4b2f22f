// The sample APIs are part of `mandate demo` now; tests import them from here as before.
export * from '@mandate/demo/resource-servers';
