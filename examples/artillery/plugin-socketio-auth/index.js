// artillery's socketio engine connects each virtual user before the first
// flow step, with socket options templated from the variables that exist at
// that moment, so a token minted by a flow `function:` step arrives too
// late. This plugin hands the connection a processor function instead:
// socket.io-client calls `auth` before every CONNECT, and the processor
// function (config.plugins.socketio-auth.function, default "socketioAuth")
// answers with a freshly minted token.
function Plugin(script) {
  const processor = script.config.processor;
  // The launcher process loads plugins too, before the processor is loaded
  // (config.processor is still a path there): nothing to do in it.
  if (!processor || typeof processor !== 'object') return;
  const name = script.config.plugins?.['socketio-auth']?.function ?? 'socketioAuth';
  const fn = processor[name];
  if (typeof fn !== 'function') throw new Error(`socketio-auth: the processor has no function ${name}`);
  script.config.socketio = { ...script.config.socketio, auth: (cb) => fn(cb) };
}

module.exports = { Plugin };
