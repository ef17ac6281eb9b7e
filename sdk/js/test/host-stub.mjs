// What kiln.js imports from the host, recorded for the tests; no directory is granted.
export const calls = [];
export const log = (level, message) => calls.push(['log', level, message]);
export const logMetric = (key, value, step) => calls.push(['metric', key, value, step]);
export const logParam = (key, value) => calls.push(['param', key, value]);
export const setTag = (key, value) => calls.push(['tag', key, value]);
export const getDirectories = () => [];
