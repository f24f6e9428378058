// Runs one job in this (fresh, permission-less) Deno process, or, started with
// `--serve`, job after job (for trusted code only: jobs share the process).
//
// A job arrives on stdin as one line of JSON, so the process can be started
// before the job exists. Everything the job reports goes out as frames
// `<kind> <body>\n` on the file `frames` (a FIFO the runner reads): the harness
// opens it, then revokes every write permission before any user code exists, so
// the open handle in this module's closure is the only way to write a frame.
// User code may write to stdout and stderr as it likes; nobody reads stdout.
//
// Every built-in the harness uses once user code may have run is captured in
// the section below (each tagged `capture:`); the code after the section calls
// only these and its own functions. tests/security/test_harness_captures.py
// patches each captured built-in in a hostile job and holds the code after the
// section to that rule.

const internal = Deno[Deno.internal];
const core = internal.core; // frozen by Deno: its functions cannot be swapped
delete Deno[Deno.internal];

const channel = Deno.openSync("frames", { write: true });
const channelRid = channel[core.internalRidSymbol];
Deno.permissions.revokeSync({ name: "write" });

const { apply, getOwnPropertyDescriptor, getPrototypeOf } = Reflect; // capture: Reflect.apply
const opWriteSync = core.writeSync;
const isAnyArrayBuffer = core.isAnyArrayBuffer;
const isArrayBufferView = core.isArrayBufferView;
const isDataView = core.isDataView;
const isNativeError = core.isNativeError;
const hasMoreWork = core.eventLoopHasMoreWork;
const DenoConsole = internal.Console;
const jsonStringify = JSON.stringify; // capture: JSON.stringify
const jsonParse = JSON.parse; // capture: JSON.parse
const encoder = new TextEncoder();
const encode = TextEncoder.prototype.encode; // capture: TextEncoder.prototype.encode
const decoder = new TextDecoder();
const decode = TextDecoder.prototype.decode; // capture: TextDecoder.prototype.decode
const U8 = Uint8Array; // capture: Uint8Array
const U8Set = U8.prototype.set; // capture: Uint8Array.prototype.set
const U8IndexOf = U8.prototype.indexOf; // capture: Uint8Array.prototype.indexOf
const toBase64 = U8.prototype.toBase64; // capture: Uint8Array.prototype.toBase64
const typedArrayProto = getPrototypeOf(U8.prototype);
const taBuffer = getOwnPropertyDescriptor(typedArrayProto, "buffer").get; // capture: get TypedArray.prototype.buffer
const taOffset = getOwnPropertyDescriptor(typedArrayProto, "byteOffset").get; // capture: get TypedArray.prototype.byteOffset
const taLength = getOwnPropertyDescriptor(typedArrayProto, "byteLength").get; // capture: get TypedArray.prototype.byteLength
const dvBuffer = getOwnPropertyDescriptor(DataView.prototype, "buffer").get; // capture: get DataView.prototype.buffer
const dvOffset = getOwnPropertyDescriptor(DataView.prototype, "byteOffset").get; // capture: get DataView.prototype.byteOffset
const dvLength = getOwnPropertyDescriptor(DataView.prototype, "byteLength").get; // capture: get DataView.prototype.byteLength
const startsWith = String.prototype.startsWith; // capture: String.prototype.startsWith
const sliceString = String.prototype.slice; // capture: String.prototype.slice
const indexOf = String.prototype.indexOf; // capture: String.prototype.indexOf
const StringCtor = String; // capture: String
const inspect = Deno.inspect; // capture: Deno.inspect
const dateNow = Date.now; // capture: Date.now
const exit = Deno.exit; // capture: Deno.exit
const stdinRead = Deno.stdin.read.bind(Deno.stdin); // capture: Deno.stdin.read
const PromiseCtor = Promise; // capture: Promise
const TypeErrorCtor = TypeError; // capture: TypeError
const preventDefault = Event.prototype.preventDefault; // capture: Event.prototype.preventDefault
const errorOf = getOwnPropertyDescriptor(ErrorEvent.prototype, "error").get; // capture: get ErrorEvent.prototype.error
const reasonOf = getOwnPropertyDescriptor(PromiseRejectionEvent.prototype, "reason").get; // capture: get PromiseRejectionEvent.prototype.reason
const randomUUID = crypto.randomUUID.bind(crypto); // capture: crypto.randomUUID
const serving = Deno.args[0] === "--serve";
// Only a serving process waits on a timer. Deno loads its timers on first use of
// `setTimeout`, ~3-5 ms of CPU: a single-use process leaves that to jobs that use them.
const setTimer = serving ? setTimeout : null; // capture: setTimeout

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
const renderer = new DenoConsole((text, printLevel) => render(text, printLevel));
const renderMethods = { __proto__: null };
for (const name in METHOD_LEVELS) renderMethods[name] = renderer[name];

// Paths and pids of the host are nobody's business inside a job.
const HIDDEN = { __proto__: null, execPath: () => "deno", cwd: () => "/", ppid: 0 };
for (const name in HIDDEN) {
  const value = HIDDEN[name];
  Reflect.defineProperty(Deno, name, typeof value === "function" ? { value } : { get: () => value });
}
Reflect.defineProperty(Deno, "mainModule", { get: () => "file:///job" });

// The handlers are declared below; declarations are hoisted.
const userConsole = { __proto__: null };
for (const name in METHOD_LEVELS) userConsole[name] = consoleMethod(name, METHOD_LEVELS[name]);
globalThis.console = userConsole;

globalThis.addEventListener("error", onError);
globalThis.addEventListener("unhandledrejection", onRejection);
globalThis.addEventListener("beforeunload", onBeforeUnload);

// Warm the module loader before any job arrives. The source is new to this process's
// DENO_DIR (a copy of a template), so the path every job's module takes (transpiling,
// recording its analysis, writing its emit) runs now rather than on the job's clock.
await import("data:application/typescript;base64," + btoa("export const ready: number = 1; // " + Math.random()));
if (serving) writeFrame("S", "ready"); // the runner reads what a clean process looks like now

// ==== end of captures: the code below may run after user code ====

// The job being run now; `finished` once its terminal frame is out.
let job = null;
let maxLogLines = 0;
let maxLogBytes = 0;
let maxResultBytes = 0;
let scriptUrl = "";
let finished = true;
let jobDone = noop;
let jobs = 0;

function noop() {}

function startJob(line) {
  job = jsonParse(line);
  maxLogLines = job.maxLogLines;
  maxLogBytes = job.maxLogBytes;
  maxResultBytes = job.maxResultBytes;
  jobs += 1; // a new module URL per job, so no job reuses a cached module
  const source = job.script + "\n// job " + jobs + "\n";
  scriptUrl = "data:application/typescript;base64," + apply(toBase64, apply(encode, encoder, [source]), []);
  logLines = 0;
  logBytes = 0;
  logsTruncated = false;
  finished = false;
  return new PromiseCtor((resolve) => (jobDone = resolve));
}

// A view of `bytes[start, end)`: constructed from its buffer, never through a method
// that looks up a constructor user code could have replaced.
function view(bytes, start, end) {
  return new U8(apply(taBuffer, bytes, []), apply(taOffset, bytes, []) + start, end - start);
}

// stdin, one line (a job) at a time: the buffer doubles when full and only new bytes
// are searched, so a large job costs linear time to read.
let inBuffer = new U8(65536);
let inLength = 0;
let inEnded = false;

async function readLine() {
  let searched = 0;
  for (;;) {
    const end = apply(U8IndexOf, view(inBuffer, 0, inLength), [10, searched]);
    if (end !== -1) return takeLine(end, end + 1);
    if (inEnded) return inLength > 0 ? takeLine(inLength, inLength) : null;
    searched = inLength;
    if (inLength === apply(taLength, inBuffer, [])) {
      const bigger = new U8(inLength * 2);
      apply(U8Set, bigger, [inBuffer]);
      inBuffer = bigger;
    }
    const n = await stdinRead(view(inBuffer, inLength, apply(taLength, inBuffer, [])));
    if (n === null) inEnded = true;
    else inLength += n;
  }
}

function takeLine(end, next) {
  const line = apply(decode, decoder, [view(inBuffer, 0, end)]);
  apply(U8Set, inBuffer, [view(inBuffer, next, inLength)]);
  inLength -= next;
  return line;
}

function writeFrame(kind, body) {
  const bytes = apply(encode, encoder, [kind + " " + body + "\n"]);
  const length = apply(taLength, bytes, []);
  let written = 0;
  while (written < length) written += opWriteSync(channelRid, view(bytes, written, length));
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
    const note = "[log output truncated: limit is " + maxLogLines + " lines, " + maxLogBytes + " bytes]";
    writeFrame("L", '{"ts":' + dateNow() + ',"level":"warn","truncated":true,"message":' + quote(note) + "}");
    return;
  }
  if (message.length > room) message = apply(sliceString, message, [0, room]);
  logLines += 1;
  logBytes += message.length;
  writeFrame("L", '{"ts":' + dateNow() + ',"level":"' + level + '","message":' + quote(message) + "}");
}

let pending = "";
let pendingLevel = null;

function render(text, printLevel) {
  pending += text;
  pendingLevel = PRINT_LEVELS[printLevel] ?? pendingLevel;
}

function consoleMethod(name, level) {
  const method = renderMethods[name];
  return function (...args) {
    if (finished || logsTruncated) return; // nothing more is kept: skip the rendering
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

// ---- results and errors ---------------------------------------------------

const OUTPUT_LIMIT = { __proto__: null }; // thrown, and recognised by identity

function viewBytes(value) {
  if (isDataView(value)) {
    return new U8(apply(dvBuffer, value, []), apply(dvOffset, value, []), apply(dvLength, value, []));
  }
  if (isArrayBufferView(value)) {
    return new U8(apply(taBuffer, value, []), apply(taOffset, value, []), apply(taLength, value, []));
  }
  return new U8(value);
}

// The result as JSON, each binary value replaced by `{<marker>: <index>}` once its
// bytes have gone out in a `B` frame. The marker is new to each job.
function serializeResult(value, marker) {
  let buffers = 0;
  let size = 0;
  const replacer = function (key, v) {
    const type = typeof v;
    if (type === "function" || type === "symbol") {
      const where = key === "" ? "the result" : "key " + quote(key);
      throw new TypeErrorCtor(type + "s cannot be sent back as JSON (" + where + " is a " + type + ")");
    }
    if (v !== null && type === "object" && (isArrayBufferView(v) || isAnyArrayBuffer(v))) {
      const bytes = viewBytes(v);
      size += apply(taLength, bytes, []) * 4 / 3 + 64;
      if (size > maxResultBytes) throw OUTPUT_LIMIT;
      writeFrame("B", buffers + " " + apply(toBase64, bytes, []));
      return { __proto__: null, [marker]: buffers++ };
    }
    return v;
  };
  const json = jsonStringify(value, replacer);
  if (json !== undefined && size + json.length > maxResultBytes) throw OUTPUT_LIMIT;
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

// `thrown`: the code is the user's (the error the function threw), not the service's.
function errorFrame(code, message, stack, thrown) {
  return jsonStringify({
    __proto__: null,
    message: StringCtor(message),
    code: StringCtor(code),
    stack: StringCtor(stack),
    thrown,
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
      const ownStack = error.stack;
      if (typeof ownStack === "string") stack = ownStack;
    } else {
      message = StringCtor(error);
    }
  } catch {
    message = "[thrown value could not be rendered]";
  }
  try {
    return errorFrame(code, message, stack, true);
  } catch {
    return errorFrame(code, "[thrown value could not be rendered]", "", true);
  }
}

function loadFailureFrame(error) {
  const text = isNativeError(error) ? StringCtor(error.message) : describe(error);
  const marker = "SyntaxError: ";
  if (apply(startsWith, text, [marker])) {
    const end = apply(indexOf, text, ["\n"]);
    const first = apply(sliceString, text, [marker.length, end === -1 ? undefined : end]);
    return errorFrame("SYNTAX_ERROR", first, apply(sliceString, text, [marker.length]), false);
  }
  return thrownFrame(error);
}

function failWith(code, message) {
  finish("E", errorFrame(code, message, "", false));
}

function onError(event) {
  apply(preventDefault, event, []);
  finish("E", thrownFrame(apply(errorOf, event, [])));
}

function onRejection(event) {
  apply(preventDefault, event, []);
  finish("E", thrownFrame(apply(reasonOf, event, [])));
}

function onBeforeUnload(event) {
  if (serving) return apply(preventDefault, event, []);
  failWith("PROCESS_ERROR", "The function's promise never settled and nothing was left to wait for");
}

// Not a top-level await: when the function's promise can never settle, the
// event loop empties, `beforeunload` fires and the job gets a clear failure.
async function runJob() {
  const fnName = job.fn;
  const payload = job.payload;
  let mod;
  try {
    mod = await import(scriptUrl);
  } catch (error) {
    return finish("E", loadFailureFrame(error));
  }
  const fn = mod[fnName];
  if (typeof fn !== "function") {
    return failWith("FUNCTION_NOT_FOUND", "Code must export function " + fnName);
  }
  let value;
  try {
    value = await fn(payload);
  } catch (error) {
    return finish("E", thrownFrame(error));
  }
  const marker = randomUUID();
  let json;
  try {
    json = serializeResult(value, marker);
  } catch (error) {
    if (error === OUTPUT_LIMIT) {
      return failWith("OUTPUT_LIMIT_ERROR", "Result is larger than the limit of " + maxResultBytes + " bytes");
    }
    return failWith("RESULT_NOT_SERIALIZABLE", "Result cannot be sent back as JSON: " + messageOf(error));
  }
  // No JSON at all: the function returned undefined, and the answer has no `result`.
  finish("R", json === undefined ? marker : marker + " " + json);
}

async function serve() {
  for (;;) {
    const line = await readLine();
    if (line === null) return;
    const done = startJob(line);
    runJob();
    if (!serving) return;
    await done;
    // One macrotask later every microtask the job left has run: ready only if it left
    // no timer, Worker or other work either (the runner replaces a busy process).
    await new PromiseCtor((resolve) => setTimer(resolve, 0));
    writeFrame("S", hasMoreWork() ? "busy" : "ready");
  }
}

serve();
