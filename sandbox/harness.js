// Runs one job in this (fresh, permission-less) Deno process, or, started with
// `--serve`, job after job (for trusted code only: jobs share the process).
//
// A job arrives on stdin as one line of JSON, so the process can be started
// before the job exists. Everything the job reports goes to stdout as frames
// `\n<nonce> <kind> <body>\n`: the nonce comes with the job and lives only in
// this module's closure, so user code, which can write to stdout freely,
// cannot forge a frame. Every built-in the harness uses after user code has
// run is captured below, before user code can patch it.

const internal = Deno[Deno.internal];
const core = internal.core; // frozen by Deno: its functions cannot be swapped
const opWriteSync = core.writeSync;
const isAnyArrayBuffer = core.isAnyArrayBuffer;
const isArrayBufferView = core.isArrayBufferView;
const isDataView = core.isDataView;
const isNativeError = core.isNativeError;
const DenoConsole = internal.Console;
delete Deno[Deno.internal];

const { apply, getOwnPropertyDescriptor, getPrototypeOf } = Reflect;
const jsonStringify = JSON.stringify;
const encoder = new TextEncoder();
const encode = TextEncoder.prototype.encode;
const U8 = Uint8Array;
const subarray = U8.prototype.subarray;
const toBase64 = U8.prototype.toBase64;
const typedArrayProto = getPrototypeOf(U8.prototype);
const taBuffer = getOwnPropertyDescriptor(typedArrayProto, "buffer").get;
const taOffset = getOwnPropertyDescriptor(typedArrayProto, "byteOffset").get;
const taLength = getOwnPropertyDescriptor(typedArrayProto, "byteLength").get;
const dvBuffer = getOwnPropertyDescriptor(DataView.prototype, "buffer").get;
const dvOffset = getOwnPropertyDescriptor(DataView.prototype, "byteOffset").get;
const dvLength = getOwnPropertyDescriptor(DataView.prototype, "byteLength").get;
const startsWith = String.prototype.startsWith;
const sliceString = String.prototype.slice;
const indexOf = String.prototype.indexOf;
const StringCtor = String;
const inspect = Deno.inspect;
const dateNow = Date.now;
const exit = Deno.exit;

const serving = Deno.args[0] === "--serve";
const jsonParse = JSON.parse;
const stdinRead = Deno.stdin.read.bind(Deno.stdin);
const decoder = new TextDecoder();
const decode = TextDecoder.prototype.decode;
const U8Set = U8.prototype.set;
const U8Slice = U8.prototype.slice;
const U8IndexOf = U8.prototype.indexOf;
const PromiseCtor = Promise;

// The job being run now; `finished` once its terminal frame is out.
let job = null;
let nonce = "";
let maxLogLines = 0;
let maxLogBytes = 0;
let maxResultBytes = 0;
let scriptUrl = "";
let finished = true;
let jobDone = () => {};

function startJob(line) {
  job = jsonParse(line);
  nonce = job.nonce;
  maxLogLines = job.maxLogLines;
  maxLogBytes = job.maxLogBytes;
  maxResultBytes = job.maxResultBytes;
  // The nonce makes each job's module URL new, so no job reuses a cached module.
  const source = job.script + "\n// job " + nonce + "\n";
  scriptUrl = "data:application/typescript;base64," + apply(toBase64, apply(encode, encoder, [source]), []);
  logLines = 0;
  logBytes = 0;
  logsTruncated = false;
  finished = false;
  return new PromiseCtor((resolve) => (jobDone = resolve));
}

// Yields stdin line by line (a job is one line of JSON), the last line at EOF. The
// buffer doubles when full and only new bytes are searched, so a large job costs
// linear time to read.
async function* stdinLines() {
  let buffer = new U8(65536);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      const bigger = new U8(buffer.length * 2);
      apply(U8Set, bigger, [buffer]);
      buffer = bigger;
    }
    const n = await stdinRead(apply(subarray, buffer, [length]));
    if (n === null) break;
    let searched = length;
    length += n;
    let end;
    while ((end = apply(U8IndexOf, apply(subarray, buffer, [0, length]), [10, searched])) !== -1) {
      yield apply(decode, decoder, [apply(subarray, buffer, [0, end])]);
      apply(U8Set, buffer, [apply(U8Slice, buffer, [end + 1, length])]);
      length -= end + 1;
      searched = 0;
    }
  }
  if (length > 0) yield apply(decode, decoder, [apply(subarray, buffer, [0, length])]);
}

function writeFrame(kind, body) {
  let bytes = apply(encode, encoder, ["\n" + nonce + " " + kind + " " + body + "\n"]);
  while (bytes.length > 0) {
    const n = opWriteSync(1, bytes);
    bytes = apply(subarray, bytes, [n]);
  }
}

function quote(text) {
  return jsonStringify(StringCtor(text)); // a string primitive: no toJSON is consulted
}

function finish(kind, body) {
  if (finished) return;
  finished = true;
  writeFrame(kind, body);
  if (!serving) exit(0);
  jobDone();
}

// ---- logs -----------------------------------------------------------------

let logLines = 0;
let logBytes = 0;
let logsTruncated = false;

function emitLog(level, message) {
  if (finished || logsTruncated) return;
  const room = maxLogBytes - logBytes;
  if (logLines >= maxLogLines || room <= 0) {
    logsTruncated = true;
    writeFrame(
      "L",
      '{"ts":' + dateNow() + ',"level":"warn","truncated":true,"message":' +
        quote(`[log output truncated: limit is ${maxLogLines} lines, ${maxLogBytes} bytes]`) +
        "}",
    );
    return;
  }
  if (message.length > room) message = apply(sliceString, message, [0, room]);
  logLines += 1;
  logBytes += message.length;
  writeFrame("L", '{"ts":' + dateNow() + ',"level":"' + level + '","message":' + quote(message) + "}");
}

const METHOD_LEVELS = {
  __proto__: null,
  log: "log",
  info: "info",
  warn: "warn",
  error: "error",
  debug: "debug",
  trace: "debug",
  assert: "error",
  table: "log",
  dir: "log",
  dirxml: "log",
  group: "log",
  groupCollapsed: "log",
  groupEnd: "log",
  count: "log",
  countReset: "log",
  time: "log",
  timeLog: "log",
  timeEnd: "log",
  timeStamp: "log",
  clear: "log",
  profile: "log",
  profileEnd: "log",
};
const PRINT_LEVELS = { __proto__: null, 2: "warn", 3: "error" };

let pending = "";
let pendingLevel = null;
const renderer = new DenoConsole((text, printLevel) => {
  pending += text;
  pendingLevel = PRINT_LEVELS[printLevel] ?? pendingLevel;
});

function consoleMethod(name, level) {
  const method = renderer[name];
  return function (...args) {
    pending = "";
    pendingLevel = null;
    try {
      apply(method, renderer, args);
    } catch {
      pending = "[console." + name + ": value could not be rendered]";
    }
    let text = pending;
    pending = "";
    if (text === "") return;
    if (text[text.length - 1] === "\n") text = apply(sliceString, text, [0, -1]);
    emitLog(level === "log" || level === "info" ? (pendingLevel ?? level) : level, text);
  };
}

const userConsole = {};
for (const name in METHOD_LEVELS) userConsole[name] = consoleMethod(name, METHOD_LEVELS[name]);
globalThis.console = userConsole;

// ---- results and errors ---------------------------------------------------

class OutputLimit extends Error {}

function viewBytes(value) {
  if (isDataView(value)) {
    return new U8(apply(dvBuffer, value, []), apply(dvOffset, value, []), apply(dvLength, value, []));
  }
  if (isArrayBufferView(value)) {
    return new U8(apply(taBuffer, value, []), apply(taOffset, value, []), apply(taLength, value, []));
  }
  return new U8(value);
}

function serializeResult(value) {
  let buffers = 0;
  let size = 0;
  const replacer = function (key, v) {
    const type = typeof v;
    if (type === "function" || type === "symbol") {
      const where = key === "" ? "the result" : `key ${quote(key)}`;
      throw new TypeError(`${type}s cannot be sent back as JSON (${where} is a ${type})`);
    }
    if (v !== null && type === "object" && (isArrayBufferView(v) || isAnyArrayBuffer(v))) {
      const bytes = viewBytes(v);
      size += bytes.length * 4 / 3 + 64;
      if (size > maxResultBytes) throw new OutputLimit();
      writeFrame("B", buffers + " " + apply(toBase64, bytes, []));
      return { __proto__: null, [nonce]: buffers++ };
    }
    return v;
  };
  const text = jsonStringify(value, replacer);
  const json = text === undefined ? "null" : text;
  if (size + json.length > maxResultBytes) throw new OutputLimit();
  return json;
}

function describe(value) {
  try {
    return typeof value === "string" ? value : inspect(value);
  } catch {
    return "[value could not be rendered]";
  }
}

function messageOf(error) {
  try {
    return describe(isNativeError(error) ? error.message : error);
  } catch {
    return "[error could not be rendered]";
  }
}

function errorFrame(code, message, stack) {
  return jsonStringify({
    __proto__: null,
    message: StringCtor(message),
    code: StringCtor(code),
    stack: StringCtor(stack),
  });
}

function thrownFrame(error) {
  let code = "RUNTIME_ERROR";
  let message;
  let stack = "";
  try {
    if (error !== null && (typeof error === "object" || typeof error === "function")) {
      const ownCode = error.code;
      if (typeof ownCode === "string" && ownCode !== "") code = ownCode;
      const ownMessage = error.message;
      message = typeof ownMessage === "string" ? ownMessage : describe(error);
      if (typeof error.stack === "string") stack = error.stack;
    } else {
      message = StringCtor(error);
    }
  } catch {
    message = "[thrown value could not be rendered]";
  }
  return errorFrame(code, message, stack);
}

function loadFailureFrame(error) {
  const text = isNativeError(error) ? StringCtor(error.message) : describe(error);
  const marker = "SyntaxError: ";
  if (apply(startsWith, text, [marker])) {
    const end = apply(indexOf, text, ["\n"]);
    const first = apply(sliceString, text, [marker.length, end === -1 ? undefined : end]);
    return errorFrame("SYNTAX_ERROR", first, apply(sliceString, text, [marker.length]));
  }
  return thrownFrame(error);
}

function failWith(code, message) {
  finish("E", errorFrame(code, message, ""));
}

globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  finish("E", thrownFrame(event.error));
});
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  finish("E", thrownFrame(event.reason));
});
globalThis.addEventListener("beforeunload", (event) => {
  if (serving) return event.preventDefault();
  failWith("PROCESS_ERROR", "The function's promise never settled and nothing was left to wait for");
});

// Not a top-level await: when the function's promise can never settle, the
// event loop empties, `beforeunload` fires and the job gets a clear failure.
async function runJob() {
  let mod;
  try {
    mod = await import(scriptUrl);
  } catch (error) {
    return finish("E", loadFailureFrame(error));
  }
  const fn = mod[job.fn];
  if (typeof fn !== "function") {
    return failWith("FUNCTION_NOT_FOUND", "Code must export function " + job.fn);
  }
  let value;
  try {
    value = await fn(job.payload);
  } catch (error) {
    return finish("E", thrownFrame(error));
  }
  let json;
  try {
    json = serializeResult(value);
  } catch (error) {
    if (error instanceof OutputLimit) {
      return failWith("OUTPUT_LIMIT_ERROR", `Result is larger than the limit of ${maxResultBytes} bytes`);
    }
    return failWith("RESULT_NOT_SERIALIZABLE", "Result cannot be sent back as JSON: " + messageOf(error));
  }
  finish("R", json);
}

// Warm the module loader before any job arrives. The source is new to this process's
// DENO_DIR (a copy of a template), so the path every job's module takes (transpiling,
// recording its analysis, writing its emit) runs now rather than on the job's clock.
await import("data:application/typescript;base64," + btoa("export const ready: number = 1; // " + Math.random()));

for await (const line of stdinLines()) {
  const done = startJob(line);
  runJob();
  if (!serving) break;
  await done;
}
