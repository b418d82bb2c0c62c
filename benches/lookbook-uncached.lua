-- wrk script: every request a different (unknown) shopper, so no lookbook answer is cached.
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/lookbooks?occasion=weekend&season=winter&shopper=bench-" .. counter)
end
