// Runs in every fresh context before the hook. Hooks get no real clock: `Date.now()`,
// `new Date()` and `Date()` give one fixed instant, so a script can neither learn the time
// of other work nor measure anything. Dates built from arguments work as usual.
(function (given, fallback) {
  "use strict";
  const RealDate = Date;
  let now = typeof given === "number" ? given
    : typeof given === "string" ? RealDate.parse(given)
    : NaN;
  if (!Number.isFinite(now)) {
    now = fallback;
  }
  function FixedDate(...args) {
    if (new.target === undefined) {
      return new RealDate(now).toString();
    }
    return Reflect.construct(RealDate, args.length === 0 ? [now] : args, new.target);
  }
  Object.defineProperty(FixedDate, "name", { value: "Date" });
  FixedDate.prototype = RealDate.prototype;
  FixedDate.now = () => now;
  FixedDate.parse = RealDate.parse;
  FixedDate.UTC = RealDate.UTC;
  // The prototype's own `constructor` was the only other way back to the real clock.
  Object.defineProperty(RealDate.prototype, "constructor", {
    value: FixedDate, writable: true, enumerable: false, configurable: true,
  });
  Object.defineProperty(globalThis, "Date", {
    value: FixedDate, writable: true, enumerable: false, configurable: true,
  });
})
