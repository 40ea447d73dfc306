// Runs INSIDE the isolate: the `secrets` global.
// Evaluated as one function expression `(call, callAsync) => global`; see
// capability.ts.
(call) => Object.freeze({ get: (name) => call('get', String(name)) });
