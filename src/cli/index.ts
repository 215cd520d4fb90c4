// The CLI's public face.
export { main, VERSION, type MainIo } from './main.js';
export { Progress, type ProgressOptions } from './progress.js';
