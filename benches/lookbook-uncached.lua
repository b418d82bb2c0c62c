-- wrk script: every request a different (unknown) shopper, so no lookbook answer is cached.
-- Start from the clock, so repeated runs do not meet the previous runs' shoppers.
counter = os.time() * 100000
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/lookbooks?occasion=weekend&season=winter&shopper=bench-" .. counter)
end
